/* A CPU-bound thread spinning in more_spin_here() for argv[1] ms, beside a thread blocked in
 * nanosleep for the same time: the target of the profile:hz tests. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static long ms;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

__attribute__((noipa)) void more_spin_here(long end) {
    volatile unsigned long n = 0;
    while (now_ms() < end)
        for (int i = 0; i < 200000; i++)
            n++;
}

static void *sleeper(void *arg) {
    (void)arg;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    ms = argc > 1 ? atol(argv[1]) : 1000;
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) != 0)
        return 1;
    more_spin_here(now_ms() + ms);
    pthread_join(t, NULL);
    return 0;
}
