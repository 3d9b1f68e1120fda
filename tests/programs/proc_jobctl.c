/* Job control seen by a real parent: the child stops itself with SIGSTOP and then SIGTSTP;
 * the parent watches with waitpid(WUNTRACED | WCONTINUED), reports each state change and
 * continues the child with SIGCONT. The child calls work() around each stop and, once
 * continued, waits for the parent's byte on a pipe: every state change is then seen
 * before the next one happens.
 *
 *   proc_jobctl N   N calls of work() between stops in the child
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

static long calls(long n) {
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += work(i);
    return sum;
}

static const char *state(int st) {
    static char buf[64];
    if (WIFSTOPPED(st))
        snprintf(buf, sizeof buf, "stopped by %d", WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        snprintf(buf, sizeof buf, "continued");
    else if (WIFEXITED(st))
        snprintf(buf, sizeof buf, "exited %d", WEXITSTATUS(st));
    else
        snprintf(buf, sizeof buf, "killed by %d", WTERMSIG(st));
    return buf;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100;
    int go[2];
    char byte;
    if (pipe(go) != 0)
        return 1;
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        /* Its own process group under a parent in another one: SIGTSTP is not discarded
         * as it would be for an orphaned process group. */
        setpgid(0, 0);
        long sum = calls(n);
        raise(SIGSTOP);
        if (read(go[0], &byte, 1) != 1)
            return 1;
        sum += calls(n);
        raise(SIGTSTP);
        if (read(go[0], &byte, 1) != 1)
            return 1;
        sum += calls(n);
        printf("child sum=%ld\n", sum);
        fflush(stdout);
        return 5;
    }
    setpgid(child, child);
    int st;
    do {
        if (waitpid(child, &st, WUNTRACED | WCONTINUED) != child) {
            perror("waitpid");
            return 1;
        }
        printf("parent saw: %s\n", state(st));
        fflush(stdout);
        if (WIFSTOPPED(st))
            kill(child, SIGCONT);
        if (WIFCONTINUED(st) && write(go[1], "g", 1) != 1)
            return 1;
    } while (!WIFEXITED(st) && !WIFSIGNALED(st));
    return 0;
}
