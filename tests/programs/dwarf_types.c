/* DWARF types for `args` and struct values: nested structs, a union, an enum, bitfields,
 * arrays (char arrays print as strings), pointers to structs, a typedef chain, anonymous
 * members. take_req(r, i, GREEN) is called for i = 0..N-1 (N from argv[1], default 3). */
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>

enum color { RED, GREEN = 5, BLUE };
typedef unsigned int u32;
typedef u32 id_t2;
typedef id_t2 handle_t;

struct inner { int m; int n; };
union val { int64_t i; double d; unsigned char b[8]; };
struct flags { unsigned int a : 3; unsigned int b : 5; int c : 4; unsigned long long d : 40; };
struct req {
    handle_t id;
    char name[16];
    struct inner in;
    struct inner pair[2];
    enum color col;
    union val v;
    struct flags fl;
    struct req *next;
    const char *label;
#ifndef NO_ANON /* bpftrace 0.17 aborts on anonymous members: tests can leave them out */
    struct { int x; int y; } anon_pt;
    union { int u1; short u2; };
#endif
};

__attribute__((noinline)) int take_req(struct req *r, int count, enum color c) {
    asm volatile("" ::: "memory");
    return r->in.m + count + c;
}
__attribute__((noinline)) long add(long a, unsigned char b) { asm volatile(""); return a + b; }
__attribute__((noinline)) struct req *make(int i) { static struct req r; r.id = i; return &r; }

int main(int argc, char **argv) {
    (void)argv;
    int n = argc > 1 ? atoi(argv[1]) : 3;
    struct req r2 = {0};
    struct req r = { .id = 7, .name = "hello", .in = {2, 3}, .pair = {{1, 2}, {3, 4}},
                     .col = BLUE, .v = { .i = 42 }, .fl = { 5, 17, -3, 123456789012ULL },
                     .next = &r2, .label = "lbl",
#ifndef NO_ANON
                     .anon_pt = {9, 10}, .u1 = 77
#endif
    };
    r2.id = 8; strcpy(r2.name, "second");
    int total = 0;
    for (int i = 0; i < n; i++) {
        total += take_req(&r, i, GREEN);
        total += add(i, 200);
        make(i);
    }
    printf("%d\n", total);
    return 0;
}
