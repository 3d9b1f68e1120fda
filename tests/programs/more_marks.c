/* Calls more_mark() argv[1] times back to back, printing the wall-clock time (ns) of each
 * call and of its exit (ground truth that probes with sleep() never delay the program),
 * after the runtime address of more_mark; exits with status argv[2] (default 0). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noipa)) int more_mark(int i) { __asm__ volatile("" ::: "memory"); return i; }

static long long wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 3;
    printf("addr %p\n", (void *)more_mark);
    char *block = malloc(100);
    printf("malloc %p\n", (void *)block);
    free(block);
    for (int i = 0; i < n; i++) {
        more_mark(i);
        printf("mark %lld\n", wall_ns());
    }
    printf("exit %lld\n", wall_ns());
    return argc > 2 ? atoi(argv[2]) : 0;
}
