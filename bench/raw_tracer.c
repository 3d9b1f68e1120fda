/*
 * The limit of the trap path: a minimal C ptrace tracer with one int3 and a boosted
 * out-of-line copy (displaced instruction + absolute jmp back), one GETREGS/SETREGS/CONT
 * per hit. The harness compiles it and measures it beside uprobe in the same run.
 *
 * usage: raw_tracer [-c CPU] VADDR LEN PROG [ARGS...]
 *   -c CPU pin the tracer alone to CPU (after the fork: the target keeps its affinity);
 *          to pin both, run the whole command under taskset instead
 *   VADDR  link-time address of the probed instruction in PROG (PIE or not)
 *   LEN    length of that instruction, which must be position-independent (plain class)
 * prints "hits N" on stderr when the target exits.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

/* Load bias of PROG in pid: the start of its first mapping for a PIE, 0 for ET_EXEC. */
static uint64_t module_base(pid_t pid, const char *prog) {
    char path[64], line[512], real[4096];
    if (!realpath(prog, real)) return 0;
    Elf64_Ehdr eh;
    FILE *ef = fopen(real, "rb");
    size_t got = ef ? fread(&eh, sizeof eh, 1, ef) : 0;
    if (ef) fclose(ef);
    if (got == 1 && eh.e_type == ET_EXEC) return 0;
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    uint64_t base = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strstr(line, real)) { base = strtoull(line, NULL, 16); break; }
    }
    if (f) fclose(f);
    return base;
}

int main(int argc, char **argv) {
    int pin = -1;
    if (argc > 2 && strcmp(argv[1], "-c") == 0) {
        pin = atoi(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if (argc < 4) { fprintf(stderr, "usage: raw_tracer [-c CPU] VADDR LEN PROG [ARGS...]\n"); return 2; }
    uint64_t vaddr = strtoull(argv[1], NULL, 0);
    int len = atoi(argv[2]);
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execv(argv[3], argv + 3);
        _exit(127);
    }
    if (pin >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(pin, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); return 2; }
    }
    int st;
    waitpid(pid, &st, 0);                       /* stopped at exec */
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_EXITKILL);
    char mempath[64];
    snprintf(mempath, sizeof mempath, "/proc/%d/mem", pid);
    int mem = open(mempath, O_RDWR);
    uint64_t base = module_base(pid, argv[3]);
    uint64_t site = base + vaddr;

    /* Remote mmap: a syscall + int3 written at rip, then everything restored. */
    struct user_regs_struct saved, r;
    ptrace(PTRACE_GETREGS, pid, 0, &saved);
    unsigned char orig[3], sc[3] = {0x0f, 0x05, 0xcc};
    pread(mem, orig, 3, saved.rip);
    pwrite(mem, sc, 3, saved.rip);
    r = saved;
    r.rax = 9; r.rdi = 0; r.rsi = 4096; r.rdx = PROT_READ | PROT_EXEC;
    r.r10 = MAP_PRIVATE | MAP_ANONYMOUS; r.r8 = (uint64_t)-1; r.r9 = 0;
    ptrace(PTRACE_SETREGS, pid, 0, &r);
    ptrace(PTRACE_CONT, pid, 0, 0);
    waitpid(pid, &st, 0);
    ptrace(PTRACE_GETREGS, pid, 0, &r);
    uint64_t xol = r.rax;
    pwrite(mem, orig, 3, saved.rip);
    ptrace(PTRACE_SETREGS, pid, 0, &saved);

    /* Slot: the displaced instruction, then jmp [rip+0]; .quad site+len */
    unsigned char slot[32], insn[16];
    pread(mem, insn, len, site);
    memcpy(slot, insn, len);
    unsigned char jmp[6] = {0xff, 0x25, 0, 0, 0, 0};
    memcpy(slot + len, jmp, 6);
    uint64_t back = site + len;
    memcpy(slot + len + 6, &back, 8);
    pwrite(mem, slot, len + 14, xol);
    unsigned char cc = 0xcc;
    pwrite(mem, &cc, 1, site);

    long hits = 0;
    ptrace(PTRACE_CONT, pid, 0, 0);
    for (;;) {
        if (waitpid(pid, &st, 0) < 0) break;
        if (WIFEXITED(st) || WIFSIGNALED(st)) break;
        int sig = WSTOPSIG(st);
        if (sig == SIGTRAP) {
            ptrace(PTRACE_GETREGS, pid, 0, &r);
            if (r.rip - 1 == site) {
                hits++;
                r.rip = xol;
                ptrace(PTRACE_SETREGS, pid, 0, &r);
                ptrace(PTRACE_CONT, pid, 0, 0);
                continue;
            }
        }
        ptrace(PTRACE_CONT, pid, 0, sig == SIGTRAP ? 0 : sig);
    }
    fprintf(stderr, "hits %ld\n", hits);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
