/* A shared library with USDT probes from <sys/sdt.h>: usdtlib:tick(n, n*10).
 * Built as is, the probe sits behind the semaphore usdtlib_tick_semaphore; built with
 * -DUSDT_NO_SEMAPHORES it has none and always fires. */
#ifndef USDT_NO_SEMAPHORES
#define _SDT_HAS_SEMAPHORES 1
#endif
#include <sys/sdt.h>

#ifdef _SDT_HAS_SEMAPHORES
unsigned short usdtlib_tick_semaphore __attribute__((unused, section(".probes")));
#define TICK_ENABLED() (usdtlib_tick_semaphore != 0)
#define TICK_SEMAPHORE() ((long)usdtlib_tick_semaphore)
#else
#define TICK_ENABLED() 1
#define TICK_SEMAPHORE() (-1L)
#endif

/* Fires the probe when enabled; returns the semaphore as the library saw it (-1: none). */
__attribute__((noinline)) long usdt_lib_tick(long n, const void *unused, unsigned len) {
    (void)unused;
    (void)len;
    long seen = TICK_SEMAPHORE();
    if (TICK_ENABLED())
        STAP_PROBE2(usdtlib, tick, n, n * 10);
    return seen;
}

/* The semaphore's value (-1: built without semaphores), without firing anything. */
long usdt_lib_semaphore(void) { return TICK_SEMAPHORE(); }

/* The program's own setting of the semaphore (tracers must only add to it). */
void usdt_lib_set_semaphore(unsigned short value) {
#ifdef _SDT_HAS_SEMAPHORES
    usdtlib_tick_semaphore = value;
#else
    (void)value;
#endif
}
