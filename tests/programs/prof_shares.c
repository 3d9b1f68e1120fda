/* A CPU-bound program with known shares: work() runs the same loop 3 times in hot() for
 * every time in cold(), so hot() holds 3/4 of the CPU time and cold() 1/4. Runs for
 * argv[1] rounds; each round is a few milliseconds. */
#include <stdlib.h>

volatile unsigned long sink;

__attribute__((noipa)) void spin(unsigned long n) {
    for (unsigned long i = 0; i < n; i++)
        sink += i;
}

__attribute__((noipa)) void hot(void) { spin(3 * 400000); sink++; }
__attribute__((noipa)) void cold(void) { spin(400000); sink++; }

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 100;
    for (long r = 0; r < rounds; r++) {
        hot();
        cold();
    }
    return 0;
}
