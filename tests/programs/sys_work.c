/* Calls work() N times, N the last argument (5 without one; 0 when it is not a number,
   e.g. a script path when this program is a #! interpreter), then prints the sum. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return i * 3 + 1;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[argc - 1]) : 5;
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += work(i);
    printf("sum=%ld\n", sum);
    return 0;
}
