/* Signals a program handles itself must reach it as without a tracer: SIGUSR1, SIGALRM
 * from an interval timer, SIGTRAP from raise() and from its own int3. Every handler calls
 * in_handler(), so a probe there counts handler runs.
 *
 *   proc_signals N          N rounds; prints what the handlers saw, exits with status 3
 *   proc_signals ignored N  for a SIGTRAP ignored since before exec: N rounds of work()
 *                           and raise(SIGTRAP); prints the sum, exits with status 4
 *   proc_signals blocked N  SIGTRAP handled and blocked around each work() call: prints
 *                           "ready", waits for a line on stdin (to be attached to), then
 *                           N rounds; a raise() while blocked must stay pending
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t usr1, alrm, traps;
static volatile long handled;

__attribute__((noinline)) long in_handler(int sig) {
    __asm__ volatile("" ::: "memory");
    return handled += sig;
}

static void on_usr1(int s) { usr1++; in_handler(s); }
static void on_alrm(int s) { alrm++; in_handler(s); }
static void on_trap(int s) { traps++; in_handler(s); }

__attribute__((noinline)) int work(int i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

/* The program's own breakpoint instruction. */
__asm__(".text\n.globl own_int3\n.type own_int3, @function\nown_int3:\n    int3\n    ret\n"
        ".size own_int3, .-own_int3\n");
void own_int3(void);

static int blocked(int rounds) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_trap;
    sigaction(SIGTRAP, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    sigset_t trap, pending;
    sigemptyset(&trap);
    sigaddset(&trap, SIGTRAP);
    int sum = 0, held = 0;
    for (int i = 0; i < rounds; i++) {
        sigprocmask(SIG_BLOCK, &trap, NULL);
        sum += work(i);
        raise(SIGTRAP);
        sigpending(&pending);
        held += sigismember(&pending, SIGTRAP);
        sigprocmask(SIG_UNBLOCK, &trap, NULL);
    }
    printf("sum=%d traps=%d held=%d\n", sum, traps, held);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "ignored") == 0) {
        int sum = 0;
        for (int i = 0; i < atoi(argv[2]); i++) {
            sum += work(i);
            raise(SIGTRAP);
        }
        printf("sum=%d\n", sum);
        return 4;
    }
    if (argc > 2 && strcmp(argv[1], "blocked") == 0)
        return blocked(atoi(argv[2]));
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_alrm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_trap;
    sigaction(SIGTRAP, &sa, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    int sum = 0;
    for (int i = 0; i < rounds; i++) {
        sum += work(i);
        raise(SIGUSR1);
        raise(SIGTRAP);
        own_int3();
        /* One timer expiry per round, waited for without a race. */
        sigprocmask(SIG_BLOCK, &block, &old);
        int before = alrm;
        struct itimerval t = {{0, 0}, {0, 1000}};
        setitimer(ITIMER_REAL, &t, NULL);
        while (alrm == before)
            sigsuspend(&old);
        sigprocmask(SIG_SETMASK, &old, NULL);
    }
    printf("sum=%d usr1=%d alrm=%d traps=%d handled=%ld\n", sum, usr1, alrm, traps, handled);
    return 3;
}
