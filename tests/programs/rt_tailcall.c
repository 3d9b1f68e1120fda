/* outer() ends in a jmp to inner() (forced in assembly), so inner returns for both. */
#include <stdio.h>

__attribute__((noinline, used)) long inner(long x) {
    __asm__ volatile("" ::: "memory");
    return x * 2;
}

long outer(long x);
__asm__(".text\n"
        ".globl outer\n"
        ".type outer, @function\n"
        "outer:\n"
        "    addq $1, %rdi\n"
        "    jmp inner\n"
        ".size outer, .-outer\n");

int main(void) {
    long sum = 0;
    for (long i = 0; i < 50; i++)
        sum += outer(i);
    printf("sum=%ld\n", sum);
    return 0;
}
