/* Loads a library late, several times:
 *
 *   late_host LIB FUNC PERIODS [wait]
 *
 * For period p = 1..PERIODS: dlopen(LIB), call FUNC(p, NULL, 0) p+1 times, print
 * "period p calls c ret r" (r: the last return value), dlclose(LIB), then call
 * late_gap(p), a function of the host that runs while the library is not loaded.
 * late_gap(0) runs before the first dlopen. FUNC(long, const void *, unsigned) fits
 * late_lib.c's late_work, usdt_lib.c's usdt_lib_tick and zlib's crc32 (NULL buffer:
 * returns 0 without reading). With "wait", it prints "ready" and reads a line from
 * stdin before the first dlopen (so that a tracer can attach first).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef long (*work_fn)(long, const void *, unsigned);

__attribute__((noinline)) int late_gap(int period) {
    __asm__ __volatile__("" : "+r"(period));
    return period;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: late_host LIB FUNC PERIODS\n");
        return 2;
    }
    int periods = atoi(argv[3]);
    if (argc > 4 && strcmp(argv[4], "wait") == 0) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 1;
    }
    late_gap(0);
    for (int p = 1; p <= periods; p++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        work_fn f = (work_fn)dlsym(h, argv[2]);
        if (!f) {
            fprintf(stderr, "dlsym: %s\n", dlerror());
            return 1;
        }
        long ret = 0;
        for (int i = 0; i < p + 1; i++)
            ret = f(p, NULL, 0);
        printf("period %d calls %d ret %ld\n", p, p + 1, ret);
        fflush(stdout);
        if (dlclose(h) != 0) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            return 1;
        }
        late_gap(p);
    }
    printf("done\n");
    return 0;
}
