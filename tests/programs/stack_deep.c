/* Stacks through -O2 -fomit-frame-pointer code: ten nested calls (f1..f9 -> leaf, one
 * inlined call on the way), and the same chain run from a signal handler interrupting
 * raise(). Built with -O2 -fomit-frame-pointer -g by the stack tests. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

volatile int sink;

__attribute__((noipa)) void leaf(int x) { sink += x; }

static inline __attribute__((always_inline)) void folded(int x) {
    sink ^= x;
    leaf(x + 1);
    sink += 3;
}

__attribute__((noipa)) void f9(int x) { folded(x * 2); sink++; }
__attribute__((noipa)) void f8(int x) { f9(x + 1); sink++; }
__attribute__((noipa)) void f7(int x) { f8(x + 1); sink++; }
__attribute__((noipa)) void f6(int x) { f7(x + 1); sink++; }
__attribute__((noipa)) void f5(int x) { f6(x + 1); sink++; }
__attribute__((noipa)) void f4(int x) { f5(x + 1); sink++; }
__attribute__((noipa)) void f3(int x) { f4(x + 1); sink++; }
__attribute__((noipa)) void f2(int x) { f3(x + 1); sink++; }
__attribute__((noipa)) void f1(int x) { f2(x + 1); sink++; }

static void on_usr1(int sig) { f5(sig); sink++; }

__attribute__((noipa)) void interrupted(void) { raise(SIGUSR1); sink++; }

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    signal(SIGUSR1, on_usr1);
    for (int i = 0; i < rounds; i++) {
        f1(i);
        interrupted();
    }
    printf("sink %d\n", sink);
    return 0;
}
