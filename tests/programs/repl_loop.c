/* Runs until killed: calls tick(i) then tock(i) every millisecond, so a REPL test can
   attach at any time, add and delete probes on the two functions and see hits soon. */
#include <stdio.h>
#include <time.h>

__attribute__((noinline)) long tick(long i) {
    __asm__ volatile("" ::: "memory");
    return i * 2;
}

__attribute__((noinline)) long tock(long i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

int main(void) {
    struct timespec ms = {0, 1000000};
    long sum = 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready\n");
    for (long i = 0;; i++) {
        sum += tick(i);
        sum += tock(i);
        nanosleep(&ms, NULL);
    }
    return (int)sum;
}
