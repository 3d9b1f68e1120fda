/* fib(20) by plain recursion: 21891 calls. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) long fib(long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20;
    printf("fib=%ld\n", fib(n));
    return 0;
}
