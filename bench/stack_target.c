/* Benchmark target for ustack: descends DEPTH frames (-O2 -fomit-frame-pointer, so only
 * CFI unwinds them), then calls bench_fn CALLS times from there and prints the checksum and
 * its own loop time in ns, as target.c does. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noipa)) long bench_fn(long x) {
    __asm__ volatile("" ::: "memory");
    return x + 1;
}

__attribute__((noipa)) long loop(long n) {
    long acc = 0;
    for (long i = 0; i < n; i++)
        acc += bench_fn(i);
    return acc;
}

__attribute__((noipa)) long descend(int depth, long n) {
    if (depth <= 1)
        return loop(n);
    long r = descend(depth - 1, n);
    __asm__ volatile("" ::: "memory");
    return r;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    int depth = argc > 2 ? atoi(argv[2]) : 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    long acc = descend(depth, n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ns = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
    printf("%ld %ld\n", acc, ns);
    return 0;
}
