/* Calls work() N times (argv[1], default 100000) and prints the checksum. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return i * 3 + 1;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += work(i);
    printf("sum=%ld\n", sum);
    return 0;
}
