/* NTHREADS threads each call work() CALLS times; each prints "tid count" when done. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NTHREADS 8
static long calls = 20000;
static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

static void *run(void *arg) {
    (void)arg;
    long sum = 0;
    for (long i = 0; i < calls; i++)
        sum += work(i);
    pthread_mutex_lock(&out);
    printf("%d %ld %ld\n", gettid(), calls, sum);
    pthread_mutex_unlock(&out);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1)
        calls = atol(argv[1]);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, run, NULL);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    return 0;
}
