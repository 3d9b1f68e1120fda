/* Functions with known arguments and return values for argument/retval tests. */
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) int add_ints(int a, int b) { return a + b; }
__attribute__((noinline)) long neg(long a) { return -a; }
__attribute__((noinline)) size_t greet(const char *who, const char *what) {
    return strlen(who) + strlen(what);
}
__attribute__((noinline)) long eight(long a, long b, long c, long d, long e, long f, long g, long h) {
    return a + b + c + d + e + f + g + h;
}
static char buffer[32] = "returned-pointer";
__attribute__((noinline)) char *give_ptr(int i) {
    __asm__ volatile("" ::: "memory");
    return buffer + i;
}

int main(void) {
    long total = 0;
    total += add_ints(40, 2);
    total += add_ints(-7, -35);
    total += neg(-123456789);
    total += (long)greet("world", "hello there");
    total += eight(1, -2, 3, -4, 5, -6, 70000000000L, -8);
    total += give_ptr(3)[0];
    printf("total=%ld\n", total);
    return 0;
}
