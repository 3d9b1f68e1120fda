/* The library that late_host.c loads and unloads with dlopen/dlclose: late_work(period)
 * is the function the tests probe (its argument tells the loaded periods apart). */
__attribute__((noinline)) long late_work(long period, const void *unused, unsigned len) {
    (void)unused;
    __asm__ __volatile__("" : "+r"(period));
    return period * 3 + len;
}
