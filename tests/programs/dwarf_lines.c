/* Source-line probes: the lines marked LINE:name are probed by name in the tests, which
 * find their numbers by these markers. work(k, &p) runs for k = 1..N (N from argv[1]). */
#include <stdio.h>
#include <stdlib.h>

struct pt { int x; int y; };

__attribute__((noinline)) int work(int n, struct pt *p) {
    int total = 0;
    struct pt local = { n, n * 2 };
    for (int i = 0; i < n; i++) {
        total += i * p->x; /* LINE:loop */
        local.y += i;
    }
    total += local.y; /* LINE:after */
    return total;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    struct pt p = {3, 4};
    int s = 0;
    /* LINE:nocode */
    for (int k = 1; k <= n; k++)
        s += work(k, &p);
    printf("%d\n", s);
    return 0;
}
