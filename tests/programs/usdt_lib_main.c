/* A program linked with usdt_lib.c that has a USDT probe of its own, usdtmain:loop(i),
 * behind a semaphore unless built with -DUSDT_NO_SEMAPHORES. Commands come from the
 * arguments, or line by line from stdin when there are none:
 *
 *   t N    for i = 1..N: usdtmain:loop(i) and usdt_lib_tick(i);
 *          prints "ticks N lib-sem S main-sem M" (semaphores as seen; -1: none)
 *   s V    sets both semaphores to V itself; prints "set V"
 *   f N    forks a child that does "t N" (printing "child ticks ...") and then waits;
 *          the parent prints "forked PID" after the child's line
 *   r      lets the child go: it prints "child after lib-sem S main-sem M" and exits;
 *          the parent reaps it and prints "reaped"
 *   q      exits
 */
#ifndef USDT_NO_SEMAPHORES
#define _SDT_HAS_SEMAPHORES 1
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <sys/wait.h>
#include <unistd.h>

long usdt_lib_tick(long n, const void *unused, unsigned len);
void usdt_lib_set_semaphore(unsigned short value);
long usdt_lib_semaphore(void);

#ifdef _SDT_HAS_SEMAPHORES
unsigned short usdtmain_loop_semaphore __attribute__((unused, section(".probes")));
#define LOOP_ENABLED() (usdtmain_loop_semaphore != 0)
#define LOOP_SEMAPHORE() ((long)usdtmain_loop_semaphore)
#else
#define LOOP_ENABLED() 1
#define LOOP_SEMAPHORE() (-1L)
#endif

static pid_t child;
static int release_fd = -1;

__attribute__((noinline)) static void ticks(long n) {
    for (long i = 1; i <= n; i++) {
        if (LOOP_ENABLED())
            STAP_PROBE1(usdtmain, loop, i);
        usdt_lib_tick(i, NULL, 0);
    }
}

static void report(const char *who, long n) {
    printf("%sticks %ld lib-sem %ld main-sem %ld\n", who, n, usdt_lib_semaphore(),
           LOOP_SEMAPHORE());
    fflush(stdout);
}

static void command(const char *line) {
    char op = line[0];
    long arg = strtol(line + 1, NULL, 10);
    if (op == 't') {
        ticks(arg);
        report("", arg);
    } else if (op == 's') {
        usdt_lib_set_semaphore((unsigned short)arg);
#ifdef _SDT_HAS_SEMAPHORES
        usdtmain_loop_semaphore = (unsigned short)arg;
#endif
        printf("set %ld\n", arg);
        fflush(stdout);
    } else if (op == 'f') {
        int done[2], go[2];
        if (pipe(done) || pipe(go))
            exit(1);
        child = fork();
        if (child == 0) {
            close(done[0]);
            close(go[1]);
            ticks(arg);
            report("child ", arg);
            char c = 0;
            if (write(done[1], &c, 1) != 1 || read(go[0], &c, 1) < 0)
                _exit(1);
            printf("child after lib-sem %ld main-sem %ld\n", usdt_lib_semaphore(),
                   LOOP_SEMAPHORE());
            fflush(stdout);
            _exit(0);
        }
        close(done[1]);
        close(go[0]);
        char c;
        if (read(done[0], &c, 1) != 1)
            exit(1);
        close(done[0]);
        release_fd = go[1];
        printf("forked %d\n", (int)child);
        fflush(stdout);
    } else if (op == 'r') {
        char c = 0;
        if (write(release_fd, &c, 1) != 1)
            exit(1);
        close(release_fd);
        waitpid(child, NULL, 0);
        printf("reaped\n");
        fflush(stdout);
    } else if (op == 'q') {
        exit(0);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            command(argv[i]);
        return 0;
    }
    char line[128];
    while (fgets(line, sizeof line, stdin))
        command(line);
    return 0;
}
