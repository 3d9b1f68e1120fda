/* Calls work() N times (argv[1], default 10), then prints its own CPU affinity (from
   sched_getaffinity) and its parent's (the tracer's, from /proc/PPID/status). With a
   second argument it first prints "ready" and waits for a line on stdin (to be attached). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return i * 3 + 1;
}

static void print_parent_allowed(void) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)getppid());
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("tracer=?\n");
        return;
    }
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Cpus_allowed_list:", 18) == 0)
            printf("tracer=%s", line + 18 + strspn(line + 18, " \t"));
    fclose(f);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10, sum = 0;
    if (argc > 2) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 1;
    }
    for (long i = 0; i < n; i++)
        sum += work(i);
    printf("sum=%ld\n", sum);
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    printf("self=");
    const char *sep = "";
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            printf("%s%d", sep, c);
            sep = ",";
        }
    printf("\n");
    print_parent_allowed();
    return 0;
}
