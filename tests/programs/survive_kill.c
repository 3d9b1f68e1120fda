/* For the tracer-death tests: NTHREADS threads call step() (a frame-pointer prologue, so
 * its first instruction is the one-byte `push %rbp`) which calls work(), with a USDT
 * probe demo:tick in the loop, until stdin reaches EOF; then each thread checks its own
 * sum and main prints "ok 1" (status 7) or "bad" (status 3). Prints "ready PID" first. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#define SDT_BASE                                                                         \
    ".ifndef _.stapsdt.base\n"                                                           \
    ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n"              \
    ".weak _.stapsdt.base\n.hidden _.stapsdt.base\n_.stapsdt.base: .space 1\n"           \
    ".size _.stapsdt.base, 1\n.popsection\n.endif\n"
#define TICK(a)                                                                          \
    __asm__ __volatile__("990: nop\n"                                                    \
                         ".pushsection .note.stapsdt,\"?\",\"note\"\n"                   \
                         ".balign 4\n.4byte 992f-991f, 994f-993f, 3\n"                   \
                         "991: .asciz \"stapsdt\"\n992: .balign 4\n"                     \
                         "993: .8byte 990b\n.8byte _.stapsdt.base\n.8byte 0\n"           \
                         ".asciz \"demo\"\n.asciz \"tick\"\n.asciz \"-8@%0\"\n"          \
                         "994: .balign 4\n.popsection\n" SDT_BASE                        \
                         : : "nor"((long)(a)))

#define NTHREADS 3
static volatile int stop_flag;
static volatile int started;
static long counts[NTHREADS];
static int bad;

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return 2 * i + 1;
}

__attribute__((noinline)) long step(long i) {
    return work(i) - 1;
}

static void *run(void *arg) {
    long idx = (long)arg, sum = 0, n = 0;
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    while (!stop_flag) {
        TICK(n);
        sum += step(n);
        n++;
    }
    if (sum != n * (n - 1))
        __atomic_store_n(&bad, 1, __ATOMIC_SEQ_CST);
    counts[idx] = n;
    return NULL;
}

int main(void) {
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, run, (void *)i);
    while (started < NTHREADS)
        usleep(100);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    stop_flag = 1;
    long total = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        total += counts[i];
    }
    printf("%s %d\n", bad ? "bad" : "ok", total > 0);
    fflush(stdout);
    return bad ? 3 : 7;
}
