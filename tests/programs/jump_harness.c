/* Drives a compiled jump-path program the way trampolines will: maps its code r-x and the
 * shared area (an inherited memfd) and calls the entries with frames from N threads.
 *
 * usage: jump_harness CODE_FILE SHM_FD HIT RET_ENTER RET_EXIT MODE THREADS CALLS
 *   MODE hit:  jp_hit(f, shm, 0) with rdi = i, rsi = thread index, rdx = 3*i,
 *              rcx = "thread-<index>", r8 = NULL, r9 = 1 (a bad pointer)
 *   MODE ret:  jp_hit(f, shm, 1) and jp_ret_enter(f, shm, 1, TRAMP) on a real stack slot, then
 *              jp_ret_exit with rax = i; checks the slot and the returned address
 *   MODE longjmp: as ret, but odd calls never return (their frame is abandoned)
 *   MODE tail: two entries on one slot (a tail call), one return
 *   MODE none: the loop without calls (the baseline of the timing)
 * Each thread names itself "jw-<index>" (its comm).
 * prints "ns_per_call=X" (wall time of the whole run / calls of one thread). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

typedef struct { uint64_t r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi,
                 rdi, orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs; }
    frame_t;
typedef uint64_t (*hit_fn)(frame_t *, uint8_t *, uint64_t);
typedef uint64_t (*enter_fn)(frame_t *, uint8_t *, uint64_t, uint64_t);
typedef uint64_t (*exit_fn)(frame_t *, uint8_t *);

static hit_fn jp_hit;
static enter_fn jp_ret_enter;
static exit_fn jp_ret_exit;
static uint8_t *shm;
enum { HIT, RET, LONGJMP, TAIL, NONE };
static int mode;
static long calls;
static volatile int failures;

#define TRAMP 0x7777000000001234ull
#define REAL_RA 0x5555000000004321ull

static void *worker(void *arg) {
    uint64_t idx = (uint64_t)(uintptr_t)arg;
    frame_t f;
    memset(&f, 0, sizeof f);
    f.fs_base = (uint64_t)pthread_self(); /* glibc x86-64: the thread pointer */
    volatile uint64_t slot[2];
    char name[32];
    snprintf(name, sizeof name, "jw-%lu", (unsigned long)idx);
    pthread_setname_np(pthread_self(), name); /* comm of this thread */
    snprintf(name, sizeof name, "thread-%lu", (unsigned long)idx);
    f.rcx = (uint64_t)(uintptr_t)name; /* arg3: a string */
    f.r8 = 0;                          /* arg4: NULL */
    f.r9 = 1;                          /* arg5: a bad pointer */
    for (long i = 0; i < calls; i++) {
        if (mode == HIT) {
            f.rdi = (uint64_t)i;
            f.rsi = idx;
            f.rdx = 3 * (uint64_t)i;
            f.rsp = (uint64_t)(uintptr_t)&slot[0];
            jp_hit(&f, shm, 0);
        } else if (mode == RET) {
            slot[0] = REAL_RA;
            f.rsp = (uint64_t)(uintptr_t)&slot[0];
            f.rdi = (uint64_t)i;
            jp_hit(&f, shm, 1);
            jp_ret_enter(&f, shm, 1, TRAMP);
            if (slot[0] != TRAMP) failures++;
            f.rax = (uint64_t)i;
            f.rsp = (uint64_t)(uintptr_t)&slot[1];
            if (jp_ret_exit(&f, shm) != REAL_RA) failures++;
        } else if (mode == LONGJMP) {
            /* odd i: the frame is left without returning (longjmp); the next call
               reuses the same stack slot with a fresh return address */
            slot[0] = REAL_RA;
            f.rsp = (uint64_t)(uintptr_t)&slot[0];
            jp_ret_enter(&f, shm, 1, TRAMP);
            if (slot[0] != TRAMP) failures++;
            if (i & 1) continue;
            f.rax = (uint64_t)i;
            f.rsp = (uint64_t)(uintptr_t)&slot[1];
            if (jp_ret_exit(&f, shm) != REAL_RA) failures++;
        } else if (mode == TAIL) {
            /* a probed function tail-calls another probed one: both entries share the
               slot; one return runs both return probes and goes to the real caller */
            slot[0] = REAL_RA;
            f.rsp = (uint64_t)(uintptr_t)&slot[0];
            jp_ret_enter(&f, shm, 1, TRAMP);
            jp_ret_enter(&f, shm, 1, TRAMP);
            if (slot[0] != TRAMP) failures++;
            f.rax = (uint64_t)i;
            f.rsp = (uint64_t)(uintptr_t)&slot[1];
            if (jp_ret_exit(&f, shm) != REAL_RA) failures++;
        } else {
            __asm__ volatile("" ::: "memory");
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage\n");
        return 2;
    }
    int cfd = open(argv[1], O_RDONLY);
    struct stat st;
    if (cfd < 0 || fstat(cfd, &st) < 0) return 3;
    uint8_t *code = mmap(NULL, st.st_size, PROT_READ | PROT_EXEC, MAP_PRIVATE, cfd, 0);
    int sfd = atoi(argv[2]);
    struct stat ss;
    if (fstat(sfd, &ss) < 0) return 4;
    shm = mmap(NULL, ss.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    if (code == MAP_FAILED || shm == MAP_FAILED) return 5;
    jp_hit = (hit_fn)(code + atol(argv[3]));
    jp_ret_enter = (enter_fn)(code + atol(argv[4]));
    jp_ret_exit = (exit_fn)(code + atol(argv[5]));
    static const char *const modes[] = {"hit", "ret", "longjmp", "tail", "none"};
    mode = -1;
    for (int m = 0; m < 5; m++)
        if (!strcmp(argv[6], modes[m])) mode = m;
    if (mode < 0) return 2;
    int threads = atoi(argv[7]);
    calls = atol(argv[8]);
    pthread_t t[64];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("ns_per_call=%.2f failures=%d\n", ns / (double)calls / threads, failures);
    return failures ? 1 : 0;
}
