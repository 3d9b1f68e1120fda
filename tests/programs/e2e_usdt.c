/* A program with USDT probes demo:tick (one int argument) and demo:done, written with the
 * same .note.stapsdt layout that <sys/sdt.h> emits, so it builds without systemtap-sdt-dev.
 *
 *   e2e_usdt N      N ticks with values 10, 20, ..., then done
 */
#include <stdio.h>
#include <stdlib.h>

#define E2E_SDT_BASE                                                                     \
    ".ifndef _.stapsdt.base\n"                                                           \
    ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n"              \
    ".weak _.stapsdt.base\n.hidden _.stapsdt.base\n_.stapsdt.base: .space 1\n"           \
    ".size _.stapsdt.base, 1\n.popsection\n.endif\n"

#define E2E_SDT_NOTE(provider, name, args)                                               \
    "990: nop\n"                                                                         \
    ".pushsection .note.stapsdt,\"?\",\"note\"\n"                                        \
    ".balign 4\n.4byte 992f-991f, 994f-993f, 3\n"                                        \
    "991: .asciz \"stapsdt\"\n992: .balign 4\n"                                          \
    "993: .8byte 990b\n.8byte _.stapsdt.base\n.8byte 0\n"                                \
    ".asciz \"" provider "\"\n.asciz \"" name "\"\n.asciz \"" args "\"\n"                \
    "994: .balign 4\n.popsection\n" E2E_SDT_BASE

#define PROBE0(provider, name) __asm__ __volatile__(E2E_SDT_NOTE(#provider, #name, ""))
#define PROBE1(provider, name, a)                                                        \
    __asm__ __volatile__(E2E_SDT_NOTE(#provider, #name, "-4@%0") : : "nor"((int)(a)))

__attribute__((noinline)) int step(int i) {
    int v = (i + 1) * 10;
    PROBE1(demo, tick, v);
    return v;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5;
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += step(i);
    PROBE0(demo, done);
    printf("sum %ld\n", sum);
    return 0;
}
