/* Threads calling probe targets: `work` (an ordinary function entry), `fib` (recursion,
   for return probes), `flagsy` (a site where the flags are live). Prints what it computed,
   so a probe that corrupts a register or the flags changes the output.
   usage: jump_work THREADS CALLS [FIB_N] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long calls;

__attribute__((noinline)) long work(long x) { return x * 3 + 1; }

/* Counts its own calls and return values: the ground truth for return probes, whatever
   the compiler made of the recursion. */
static long fib_calls, fib_ret_sum;
__attribute__((noinline)) long fib(long n) {
    long r = n < 2 ? n : fib(n - 1) + fib(n - 2);
    fib_calls++;
    fib_ret_sum += r;
    return r;
}

/* The probe goes on `flagsy_site`: flags set by the cmp are read by the jcc after it. */
long flagsy(long a, long b);
__asm__(".text\n.globl flagsy\n.type flagsy,@function\nflagsy:\n"
        "  cmpq %rsi, %rdi\n"
        ".globl flagsy_site\nflagsy_site:\n"
        "  movq %rdi, %rax\n"
        "  movq %rsi, %rdx\n"
        "  jl 1f\n"
        "  subq %rsi, %rax\n"
        "  ret\n"
        "1: subq %rdi, %rdx\n"
        "  movq %rdx, %rax\n"
        "  ret\n"
        ".size flagsy, .-flagsy\n");

static void *run(void *arg) {
    long id = (long)arg, sum = 0;
    for (long i = 0; i < calls; i++) {
        sum += work(i + id);
        sum += flagsy(i, 50 + id);
    }
    return (void *)sum;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    calls = argc > 2 ? atol(argv[2]) : 1000;
    long fn = argc > 3 ? atol(argv[3]) : 0;
    pthread_t t[64];
    long total = 0;
    for (long i = 0; i < n; i++) pthread_create(&t[i], NULL, run, (void *)i);
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (long)r;
    }
    printf("total=%ld\n", total);
    if (fn) {
        long r = fib(fn);
        printf("fib=%ld calls=%ld retsum=%ld\n", r, fib_calls, fib_ret_sum);
    }
    return 0;
}
