/*
 * The C floor of each ptrace request the hit path makes, on a tracee that stays stopped:
 * the Python engine's cost for the same request minus this is what Python and ctypes add.
 *
 * usage: ptrace_cost N
 * prints one "NAME NS_PER_CALL" line per request: the best of 5 rounds of N calls, as the
 * Python side measures (scheduler noise removed, the floor kept).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_EXITKILL);
    struct user_regs_struct r;
    long rip_off = offsetof(struct user_regs_struct, rip);
    ptrace(PTRACE_GETREGS, pid, 0, &r);
    double best[5] = {1e18, 1e18, 1e18, 1e18, 1e18};
    for (int round = 0; round < 5; round++) {
        long long t = now_ns();
        for (long i = 0; i < n; i++) ptrace(PTRACE_GETREGS, pid, 0, &r);
        long long t1 = now_ns();
        for (long i = 0; i < n; i++) ptrace(PTRACE_SETREGS, pid, 0, &r);
        long long t2 = now_ns();
        /* Nothing is pending: the cost of asking (the loop's waitpid minus the sleep). */
        for (long i = 0; i < n; i++) waitpid(pid, &st, WNOHANG | __WALL);
        long long t3 = now_ns();
        /* One register instead of the whole set: what a hit that only moves rip needs. */
        for (long i = 0; i < n; i++) ptrace(PTRACE_PEEKUSER, pid, rip_off, 0);
        long long t4 = now_ns();
        for (long i = 0; i < n; i++) ptrace(PTRACE_POKEUSER, pid, rip_off, r.rip);
        long long t5 = now_ns();
        long long ts[6] = {t, t1, t2, t3, t4, t5};
        for (int k = 0; k < 5; k++) {
            double d = (double)(ts[k + 1] - ts[k]) / n;
            if (d < best[k]) best[k] = d;
        }
    }
    printf("getregs %.0f\nsetregs %.0f\nwaitpid_nohang %.0f\npeekuser_rip %.0f\n"
           "pokeuser_rip %.0f\n", best[0], best[1], best[2], best[3], best[4]);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 0;
}
