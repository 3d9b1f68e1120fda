/* system() forks through vfork-style clone and execs a shell; work() runs around it. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

__attribute__((noinline)) int work(int i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

int main(void) {
    int sum = 0, codes = 0;
    for (int i = 0; i < 5; i++) {
        sum += work(i);
        codes += WEXITSTATUS(system("exit 3"));
    }
    printf("sum=%d codes=%d\n", sum, codes);
    return 0;
}
