/* NTHREADS threads call work() until stdin reaches EOF, then each checks its own sum
 * against the closed form and main prints "ok <total calls>" or "bad". Prints "ready"
 * once every thread is running. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NTHREADS 4
static volatile int stop_flag;
static volatile int started;
static long counts[NTHREADS];
static int bad;

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return 2 * i + 1;
}

__attribute__((noinline)) long step(long i) {
    return work(i) - 1;
}

static void *run(void *arg) {
    long idx = (long)arg, sum = 0, n = 0;
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    while (!stop_flag) {
        sum += step(n);
        n++;
    }
    /* sum of 2i for i < n */
    if (sum != n * (n - 1))
        __atomic_store_n(&bad, 1, __ATOMIC_SEQ_CST);
    counts[idx] = n;
    return NULL;
}

int main(void) {
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, run, (void *)i);
    while (started < NTHREADS)
        usleep(100);
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    stop_flag = 1;
    long total = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        total += counts[i];
    }
    printf("%s %d\n", bad ? "bad" : "ok", total > 0);
    return bad ? 3 : 7;
}
