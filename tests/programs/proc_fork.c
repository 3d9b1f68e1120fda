/* fork and vfork as the runtime tests need them; every process prints its pid and its
 * own sum so the test can check per-pid counts against ground truth.
 *
 *   proc_fork plain N   parent: work() N times, fork; child: 2N calls; parent: N more
 *   proc_fork ret N     fork() inside forker(), which a return probe watches: parent and
 *                       child both return through it, then each calls work() N times
 *   proc_fork vfork N   parent: work() N times; vfork child calls work() once, then execs
 *                       this program as "leaf 7"; parent: N more calls
 *   proc_fork leaf N    work() N times
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

/* Returns fork()'s value through a frame whose return address a return probe replaces. */
__attribute__((noinline)) int forker(int tag) {
    __asm__ volatile("" ::: "memory");
    pid_t p = fork();
    __asm__ volatile("" ::: "memory");
    return p < 0 ? -1 : (int)p + tag - tag;
}

static long calls(long n) {
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += work(i);
    return sum;
}

static int reap(pid_t child) {
    int st = 0;
    if (waitpid(child, &st, 0) != child)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "plain";
    long n = argc > 2 ? atol(argv[2]) : 100;
    if (strcmp(mode, "leaf") == 0) {
        printf("leaf %d sum=%ld\n", getpid(), calls(n));
        return 0;
    }
    if (strcmp(mode, "plain") == 0) {
        long sum = calls(n);
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) {
            printf("child %d sum=%ld\n", getpid(), sum + calls(2 * n));
            return 0;
        }
        sum += calls(n);
        int code = reap(child);
        printf("parent %d sum=%ld child=%d\n", getpid(), sum, code);
        return 0;
    }
    if (strcmp(mode, "ret") == 0) {
        fflush(stdout);
        int child = forker(1);
        long sum = calls(n);
        if (child == 0) {
            printf("child %d sum=%ld\n", getpid(), sum);
            return 0;
        }
        int code = reap(child);
        printf("parent %d sum=%ld child=%d\n", getpid(), sum, code);
        return 0;
    }
    if (strcmp(mode, "vfork") == 0) {
        long sum = calls(n);
        fflush(stdout);
        pid_t child = vfork();
        if (child == 0) {
            work(0);
            execl("/proc/self/exe", argv[0], "leaf", "7", (char *)NULL);
            _exit(127);
        }
        sum += calls(n);
        int code = reap(child);
        printf("parent %d sum=%ld child=%d\n", getpid(), sum, code);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
