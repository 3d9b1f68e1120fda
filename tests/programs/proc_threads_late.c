/* Threads that start after the tracer attached, and threads that exit inside a probed
 * function. Prints "ready" and waits for a line on stdin (the test attaches meanwhile),
 * then starts NTHREADS threads: each runs thread_main(), calls work() N times and ends
 * inside leave() through pthread_exit (a return probe on leave() never returns). main
 * joins them, waits until /proc/self/task lists only itself (a traced thread stays there
 * until its tracer has collected its exit), calls after_join() and prints one line per
 * thread and the total.
 *
 *   proc_threads_late N
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NTHREADS 6
static long rounds;
static long sums[NTHREADS];

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

__attribute__((noinline)) void leave(long idx) {
    __asm__ volatile("" ::: "memory");
    pthread_exit((void *)idx);
}

__attribute__((noinline)) void *thread_main(void *arg) {
    long idx = (long)arg, sum = 0;
    for (long i = 0; i < rounds; i++)
        sum += work(i);
    sums[idx] = sum;
    leave(idx);
    return NULL;
}

static int tasks(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2; /* . and .. */
}

__attribute__((noinline)) int after_join(int n) {
    __asm__ volatile("" ::: "memory");
    return n;
}

int main(int argc, char **argv) {
    rounds = argc > 1 ? atol(argv[1]) : 100;
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)i);
    long total = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += sums[(long)r];
    }
    while (tasks() > 1)
        sched_yield();
    after_join(NTHREADS);
    for (int i = 0; i < NTHREADS; i++)
        printf("thread %d sum=%ld\n", i, sums[i]);
    printf("total=%ld\n", total);
    return 0;
}
