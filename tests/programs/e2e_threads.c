/* Four threads each call step() N times: per-thread state (self->, tid keys) must not mix.
 *
 *   e2e_threads N
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static int rounds;

__attribute__((noinline)) int step(int who, int i) {
    asm volatile("");
    return who * 1000 + i;
}

static void *run(void *arg) {
    int who = (int)(long)arg;
    long sum = 0;
    for (int i = 0; i < rounds; i++)
        sum += step(who, i);
    return (void *)sum;
}

int main(int argc, char **argv) {
    rounds = argc > 1 ? atoi(argv[1]) : 10;
    pthread_t t[4];
    for (long w = 0; w < 4; w++)
        pthread_create(&t[w], NULL, run, (void *)(w + 1));
    long total = 0;
    for (int w = 0; w < 4; w++) {
        void *r;
        pthread_join(t[w], &r);
        total += (long)r;
    }
    printf("total %ld\n", total);
    return 0;
}
