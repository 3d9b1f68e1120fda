/* A library whose code runs before main: an IFUNC resolver (during relocation) and a
 * constructor, both calling functions a test probes. Each keeps its own tally, read
 * through ctor_lib_tallies(), the ground truth for the probe counts. Static functions and
 * counters: a resolver runs before relocation, when only PC-relative accesses work. */
#include <stdlib.h>

static int work_calls;
static int resolver_calls;
static int randr_calls;

static __attribute__((noinline)) int ctor_work(int n)
{
    work_calls++;
    __asm__ volatile("" ::: "memory");
    return n * 2;
}

static __attribute__((noinline)) void resolver_step(void)
{
    resolver_calls++;
    __asm__ volatile("" ::: "memory");
}

static int pick_impl(void) { return 7; }

static void *pick_resolver(void)
{
    resolver_step();
    resolver_step();
    return (void *)pick_impl;
}

int ctor_lib_pick(void) __attribute__((ifunc("pick_resolver")));

__attribute__((constructor)) static void lib_init(void)
{
    unsigned seed = 1;
    for (int i = 0; i < 5; i++)
        ctor_work(i);
    for (int i = 0; i < 3; i++) {
        randr_calls++;
        if (rand_r(&seed) < 0)
            abort();
    }
}

void ctor_lib_tallies(int *work, int *resolver, int *randrs)
{
    *work = work_calls;
    *resolver = resolver_calls;
    *randrs = randr_calls;
}
