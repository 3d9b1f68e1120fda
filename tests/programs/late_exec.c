/* Exec chains (the address space replaced late in a process's life):
 *
 *   late_exec N [PROG ARGS...]
 *
 * Calls late_step(i) for i = 1..N, prints "pid P steps N", then, when more arguments
 * follow, execs PROG ARGS... in the same process (no fork).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) long late_step(long i) {
    __asm__ __volatile__("" : "+r"(i));
    return i * 2;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1;
    long sum = 0;
    for (long i = 1; i <= n; i++)
        sum += late_step(i);
    printf("pid %d steps %ld\n", (int)getpid(), n);
    fflush(stdout);
    if (argc > 2) {
        execv(argv[2], argv + 2);
        perror("execv");
        return 1;
    }
    return sum == n * (n + 1) ? 0 : 1;
}
