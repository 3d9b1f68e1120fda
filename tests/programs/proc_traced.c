/* A process already held by another tracer: the parent PTRACE_SEIZEs its child, prints
 * "traced <child pid>", and both wait for stdin to close; then the parent lets the child
 * go and reaps it. (PTRACE_SEIZE does not stop the child.) */
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    char buf[64];
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        while (read(0, buf, sizeof buf) > 0)
            ;
        return 0;
    }
    if (ptrace(PTRACE_SEIZE, child, NULL, NULL) != 0) {
        perror("PTRACE_SEIZE");
        kill(child, SIGKILL);
        return 1;
    }
    printf("traced %d\n", child);
    fflush(stdout);
    while (read(0, buf, sizeof buf) > 0)
        ;
    int st;
    waitpid(child, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}
