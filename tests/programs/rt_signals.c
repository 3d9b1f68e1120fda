/* Signals the program sends itself must reach it unchanged, SIGTRAP and its own int3
 * included; counts what its handlers saw. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile int usr1, traps;

static void on_usr1(int s) { (void)s; usr1++; }
static void on_trap(int s) { (void)s; traps++; }

__attribute__((noinline)) int work(int i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

/* An int3 that belongs to the program; the instruction after it is a plain nop. */
__asm__(".text\n.globl own_trap\n.type own_trap, @function\nown_trap:\n    int3\n    nop\n    ret\n.size own_trap, .-own_trap\n");
void own_trap(void);

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_trap;
    sigaction(SIGTRAP, &sa, NULL);
    int sum = 0;
    for (int i = 0; i < 10; i++) {
        sum += work(i);
        raise(SIGUSR1);
        raise(SIGTRAP);
        own_trap();
    }
    printf("sum=%d usr1=%d traps=%d\n", sum, usr1, traps);
    return 0;
}
