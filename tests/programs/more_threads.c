/* Threads that each read and then set a thread-local through probed functions, one after
 * another (create, join), so that every probe sees a fresh thread. Prints each worker's tid
 * (the ground truth of which threads existed and exited) to PATH, or stdout.
 * With "reuse" as a third argument, each new thread is made to get the tid of the one
 * before (the kernel's last-pid counter is set back once the old tid is free), as happens
 * on its own once pids wrap around.
 * Usage: more_threads N [PATH|-] [reuse] */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noipa)) int more_check(int i) { __asm__ volatile("" ::: "memory"); return i; }
__attribute__((noipa)) int more_set(int v) { __asm__ volatile("" ::: "memory"); return v; }

static FILE *out;
static volatile int last_tid;

/* Make `tid` the next pid the kernel hands out, once the old thread is fully gone (a traced
 * thread stays until its tracer has collected its exit). */
static void reuse_tid(int tid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d", tid);
    for (long spins = 0; access(path, F_OK) == 0 && spins < 100000000L; spins++)
        sched_yield();
    FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (f) {
        fprintf(f, "%d", tid - 1);
        fclose(f);
    }
}

static void *worker(void *arg) {
    int i = (int)(long)arg;
    more_check(i);
    more_set(i + 1);
    last_tid = (int)gettid();
    fprintf(out, "tid %d\n", last_tid);
    fflush(out);
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    out = argc > 2 && strcmp(argv[2], "-") != 0 ? fopen(argv[2], "w") : stdout;
    int reuse = argc > 3 && strcmp(argv[3], "reuse") == 0;
    if (!out)
        return 2;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (reuse && last_tid)
            reuse_tid(last_tid);
        if (pthread_create(&t, NULL, worker, (void *)(long)i) != 0)
            return 1;
        pthread_join(t, NULL);
    }
    return 0;
}
