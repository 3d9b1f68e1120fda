/* Spends its time in clock_gettime, which the kernel's vDSO implements: profile samples
 * land in the vDSO, whose frames need its own symbols and CFI. argv[1]: iterations. */
#include <stdlib.h>
#include <time.h>

volatile long stack_vdso_sink;

__attribute__((noipa)) void stack_vdso_tick(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    stack_vdso_sink += ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    for (long i = 0; i < n; i++)
        stack_vdso_tick();
    return 0;
}
