/* THREADS threads each call work(t * CALLS + i) for i < CALLS, and print (as the ground
   truth) how many calls and the sum of their arguments. With a third argument "seq",
   each thread's calls carry (t, i) so per-thread order can be checked in traced output.
   usage: jump_threads THREADS CALLS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long calls;

__attribute__((noinline)) long work(long x, long t) {
    __asm__ volatile("" ::: "memory");
    return x * 3 + t;
}

static void *run(void *arg) {
    long t = (long)arg, sum = 0;
    for (long i = 0; i < calls; i++) sum += work(t * calls + i, t);
    return (void *)sum;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    calls = argc > 2 ? atol(argv[2]) : 1000;
    pthread_t th[64];
    long total = 0;
    for (long i = 0; i < n; i++) pthread_create(&th[i], NULL, run, (void *)i);
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(th[i], &r);
        total += (long)r;
    }
    printf("calls=%ld total=%ld\n", n * calls, total);
    return 0;
}
