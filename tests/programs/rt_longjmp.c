/* leave() is left by longjmp on every other call; the rest return normally. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf env;

__attribute__((noinline)) void deep(int i) {
    if (i % 2)
        longjmp(env, i);
}

__attribute__((noinline)) int leave(int i) {
    deep(i);
    return i * 10;
}

int main(void) {
    long sum = 0;
    int jumps = 0;
    for (int i = 0; i < 100; i++) {
        if (setjmp(env)) {
            jumps++;
            continue;
        }
        sum += leave(i);
    }
    printf("sum=%ld jumps=%d\n", sum, jumps);
    return 0;
}
