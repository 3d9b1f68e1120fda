/* A switch gcc compiles into a jump table (its targets are not visible as branches). */
#include <stdio.h>
#include <stdlib.h>

volatile long sink;

__attribute__((noinline)) long pick(long x, long y) {
    switch (x) {
    case 0: sink = y * 3; break;
    case 1: sink = y + 23; break;
    case 2: sink = y ^ 37; break;
    case 3: sink = y - 41; break;
    case 4: sink = y * 53 + 1; break;
    case 5: sink = y << 5; break;
    case 6: sink = y >> 3; break;
    case 7: sink = y | 83; break;
    default: sink = -1;
    }
    return sink;
}

int main(int argc, char **argv) {
    printf("%ld\n", pick(argc > 1 ? atol(argv[1]) : 3, 100));
    return 0;
}
