/* Execs argv[1..] from a second thread (not the thread-group leader); the leader waits. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static char **args;

static void *run(void *unused) {
    (void)unused;
    execv(args[0], args);
    perror("execv");
    _exit(127);
}

int main(int argc, char **argv) {
    pthread_t t;
    if (argc < 2)
        return 2;
    args = argv + 1;
    pthread_create(&t, NULL, run, NULL);
    pthread_join(t, NULL);
    return 1;
}
