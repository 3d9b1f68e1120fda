/* N threads call work(t << 32 | i) for i = 0, 1, 2, ... until stdin reaches EOF, then
   print the total of calls. Prints "ready" once every thread has made a call, so a
   tracer attaches to threads that are running through the site.
   usage: jump_spin THREADS */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_int stop, started;
static long counts[64];

__attribute__((noinline)) long work(long x) {
    __asm__ volatile("" ::: "memory");
    return x * 3 + 1;
}

static void *run(void *arg) {
    long t = (long)arg, i = 0, sum = 0;
    atomic_fetch_add(&started, 1);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        sum += work(t << 32 | (i & 0xffffffff));
        i++;
    }
    counts[t] = i;
    return (void *)sum;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    pthread_t th[64];
    for (long i = 0; i < n; i++) pthread_create(&th[i], NULL, run, (void *)i);
    while (atomic_load(&started) < n) usleep(100);
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    atomic_store(&stop, 1);
    long total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += counts[i];
    }
    printf("calls=%ld\n", total);
    return 0;
}
