/* A program under seccomp: "strict" (only read, write, _exit, sigreturn allowed) or
 * "filter" (a BPF filter failing mmap with EPERM). It prints "ready", then calls work()
 * once per byte read from stdin and at EOF prints the number of calls. Strict mode exits
 * with the raw exit system call (exit_group is not allowed). */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile long calls;

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    calls++;
    return i + 1;
}

static void say(const char *s) { write(1, s, strlen(s)); }

int main(int argc, char **argv) {
    int strict = argc > 1 && strcmp(argv[1], "strict") == 0;
    if (strict) {
        say("ready\n");
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
    } else {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {sizeof f / sizeof f[0], f};
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
        say("ready\n");
    }
    char c;
    long i = 0, r;
    while ((r = read(0, &c, 1)) != 0)
        if (r == 1)
            work(i++); /* r < 0: EINTR (no errno to look at without libc's help) */
    char out[32];
    int n = 0;
    long v = calls;
    char digits[24];
    do { digits[n++] = '0' + v % 10; v /= 10; } while (v);
    for (int k = 0; k < n; k++) out[k] = digits[n - 1 - k];
    out[n] = '\n';
    write(1, out, n + 1);
    syscall(SYS_exit, 0);
    return 0;
}
