/* The target of the end-to-end tests: small functions with known arguments, strings,
 * structs, a call chain for stacks, malloc/open calls, and its own wall-time report.
 *
 *   e2e_target N        run the workload N times, then print "done <checksum> <ms>"
 *   e2e_target N PAUSE  sleep PAUSE microseconds after each round (long-running target)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct point {
    int x;
    long y;
    char name[8];
    struct point *next;
};

static const char *names[] = {"alpha", "beta", "gamma"};

__attribute__((noinline)) long work(int a, long b, const char *s) {
    asm volatile("");
    return a + b + (long)strlen(s);
}

__attribute__((noinline)) long add8(long a, long b, long c, long d, long e, long f, long g,
                                    long h) {
    asm volatile("");
    return a + b + c + d + e + f + g + h;
}

__attribute__((noinline)) long visit(struct point *p) {
    asm volatile("");
    return p->x + p->y + (p->next ? p->next->x : 0);
}

__attribute__((noinline)) const char *greet(int i) {
    asm volatile("");
    return names[i % 3];
}

__attribute__((noinline)) int leaf(int i) {
    asm volatile("");
    return i * 2;
}

__attribute__((noinline)) int level2(int i) {
    int r = leaf(i);
    asm volatile("");
    return r + 1;
}

__attribute__((noinline)) int level1(int i) {
    int r = level2(i);
    asm volatile("");
    return r + 1;
}

__attribute__((noinline)) int neg(int i) {
    asm volatile("");
    return -i;
}

__attribute__((noinline)) void argv_list(char **list) {
    asm volatile("" : : "r"(list) : "memory");
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    long pause_us = argc > 2 ? atol(argv[2]) : 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long sum = 0;
    struct point second = {7, 70, "second", NULL};
    struct point first = {3, 30, "first", &second};
    char *list[] = {"one", "two", "three", NULL};
    for (int i = 0; i < rounds; i++) {
        sum += work(i, i * 10L, names[i % 3]);
        sum += add8(1, 2, 3, 4, 5, 6, 7, i);
        sum += visit(&first);
        sum += (long)strlen(greet(i));
        sum += level1(i);
        sum += neg(i);
        argv_list(list);
        void *p = malloc(16 << (i % 4));
        asm volatile("" : : "r"(p) : "memory"); /* keep gcc from dropping the pair */
        free(p);
        int fd = open("/dev/null", O_RDONLY);
        if (fd >= 0)
            close(fd);
        if (pause_us)
            usleep(pause_us);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    printf("done %ld %ld\n", sum, ms);
    return 0;
}
