/* USDT probes for the usdt/resolve/listing tests. Built twice: plain (no semaphores) and
 * with -DUSDT_SEMAPHORES, where each probe of provider "usdtdemo" gets a semaphore.
 * Arguments cover registers of several widths, stack memory, immediates and a global
 * accessed %rip-relative, signed and unsigned. */
#ifdef USDT_SEMAPHORES
#define _SDT_HAS_SEMAPHORES 1
#endif
#include <stdio.h>
#include <sys/sdt.h>
#include <unistd.h>

#ifdef USDT_SEMAPHORES
unsigned short usdtdemo_start_semaphore __attribute__((unused)) __attribute__((section(".probes")));
unsigned short usdtdemo_values_semaphore __attribute__((unused)) __attribute__((section(".probes")));
unsigned short usdtdemo_done_semaphore __attribute__((unused)) __attribute__((section(".probes")));
#endif

long usdt_global = -123456789012345L;

__attribute__((noinline)) long usdt_work(long n, signed char c, short h, unsigned int u)
{
    volatile long local = n * 7;
    DTRACE_PROBE(usdtdemo, start);
    DTRACE_PROBE4(usdtdemo, values, n, c, h, u);
    DTRACE_PROBE3(usdtdemo, done, local, usdt_global, -5);
    return local + c + h + u;
}

int main(void)
{
    long r = usdt_work(42, -3, -1000, 4000000000u);
    printf("ready %ld\n", r);
    fflush(stdout);
    char buf[1];
    while (read(0, buf, 1) > 0)
        ;
    return 0;
}
