/*
 * The instruction matrix: one function per instruction class at a probe site.
 *
 * Every probe-able site is a global function symbol `site_<class>` (so resolve_uprobe
 * finds it by name) inside a function `m_<class>(x) -> result`. main calls each m_*
 * once from the table below and prints one line per class, so an instruction run
 * wrongly out of line changes the output (or crashes). Sites whose instruction runs
 * more than once say so in tests/runtime/test_insn_matrix.py.
 *
 * Functions `r_<class>` hold refused instructions at `site_rej_<class>`; they are never
 * called: only placing a probe on them is attempted.
 *
 * The section .insn_matrix lists every site with its expected class and hit count; the
 * area `xol_area` (in .text) gives tests that drive the slots without the runtime's XOL
 * injection a place for them within rel32 reach.
 *
 * Position-independent (RIP-relative data, printf@PLT), so one source builds PIE and
 * non-PIE. Needs AVX2 (rip_vmovdqu, avx2_plain).
 */

    .macro FUNC name
    .text
    .globl m_\name
    .type m_\name, @function
m_\name:
    .endm

    /* A probe site; `cls` is the class runtime.x86.analyse must find and `hits` how often
       the site runs. Both go into the non-allocated section .insn_matrix ("name cls hits"
       lines) so the tests read the expectations from the program itself. */
    .macro SITE name, cls, hits=1
    .pushsection .insn_matrix, "", @progbits
    .ascii "site_\name \cls \hits\n"
    .popsection
    .globl site_\name
    .type site_\name, @function
site_\name:
    .endm

    .macro REJECT name
    .text
    .globl r_\name
    .type r_\name, @function
r_\name:
    .pushsection .insn_matrix, "", @progbits
    .ascii "site_rej_\name refused 0\n"
    .popsection
    .globl site_rej_\name
    .type site_rej_\name, @function
site_rej_\name:
    .endm

    /* rax = the arithmetic flags (CF PF AF ZF SF OF) as they are now. */
    .macro FLAGS_TO_RAX
    pushfq
    pop %rax
    and $0x8d5, %eax
    .endm

/* ---------------------------------------------------------------- data */

    .data
    .align 64
d_vec:      .quad 0x0102030405060708, 0x1112131415161718, 0x2122232425262728, 0x3132333435363738
d_quad:     .quad 0x1122334455667788
d_long:     .long 0x12346
d_word:     .word 0x1000
d_byte:     .byte 5
    .align 8
d_dbl:      .double 1.5
d_store:    .quad 0
d_store4:   .long 0
    .align 8
d_store8:   .quad 0
d_counter:  .quad 100
d_counter2: .quad 1000
d_fnptr:    .quad h_retcheck
d_jmp_target:  .quad .Ljt_rip
d_jmp_target2: .quad .Ljt_reg
d_str:      .ascii "out of line!!"
    .set d_str_len, . - d_str
    /* (a, b) pairs for the jcc sites: below/equal/above, signed overflow, parity */
    .align 8
d_jcc_pairs:
    .long 1, 2
    .long 2, 2
    .long 3, 2
    .long 0x80000000, 1
    .long 0x7fffffff, -1
    .long 0, 3

/* ---------------------------------------------------------------- helpers */

    .text
    /* h_retcheck(x, expected_return): 3x + 0x1000 if the return address on the stack is
       the expected one, 3x + 0x2000 otherwise. The call sites pass their own next
       instruction, so a slot address pushed by mistake shows in the output. */
    .type h_retcheck, @function
h_retcheck:
    lea (%rdi,%rdi,2), %rax
    cmp (%rsp), %rsi
    jne 1f
    add $0x1000, %rax
    ret
1:  add $0x2000, %rax
    ret

/* ---------------------------------------------------------------- RIP-relative */

FUNC rip_load
    mov %rdi, %rcx
SITE rip_load, rip_relative
    mov d_quad(%rip), %rax
    xor %rcx, %rax
    ret

FUNC rip_store
    lea 3(%rdi), %rax
SITE rip_store, rip_relative
    mov %rax, d_store(%rip)
    mov d_store(%rip), %rax
    add %rdi, %rax
    ret

FUNC rip_store_imm
    nop
SITE rip_store_imm, rip_relative
    movl $0x55667788, d_store4(%rip)
    mov d_store4(%rip), %eax
    add %rdi, %rax
    ret

FUNC rip_cmpb_imm
    nop
SITE rip_cmpb_imm, rip_relative
    cmpb $5, d_byte(%rip)
    FLAGS_TO_RAX
    ret

FUNC rip_cmpl_imm
    nop
SITE rip_cmpl_imm, rip_relative
    cmpl $0x12345, d_long(%rip)
    FLAGS_TO_RAX
    ret

FUNC rip_cmpw_imm
    nop
SITE rip_cmpw_imm, rip_relative
    cmpw $0x1234, d_word(%rip)
    FLAGS_TO_RAX
    ret

FUNC rip_cmpq_imm8
    nop
SITE rip_cmpq_imm8, rip_relative
    cmpq $-2, d_quad(%rip)
    FLAGS_TO_RAX
    ret

FUNC rip_addq_imm
    nop
SITE rip_addq_imm, rip_relative
    addq $7, d_counter(%rip)
    mov d_counter(%rip), %rax
    ret

FUNC rip_push
    nop
SITE rip_push, rip_relative
    pushq d_quad(%rip)
    pop %rax
    xor %rdi, %rax
    ret

FUNC rip_pop
    push %rdi
SITE rip_pop, rip_relative
    popq d_store8(%rip)
    mov d_store8(%rip), %rax
    add $1, %rax
    ret

FUNC rip_lea
    nop
SITE rip_lea, rip_relative
    lea d_quad(%rip), %rax
    lea d_quad(%rip), %rcx
    sub %rax, %rcx
    mov (%rax), %rax
    add %rcx, %rax
    ret

FUNC rip_lock_xadd
    mov %rdi, %rax
SITE rip_lock_xadd, rip_relative
    lock xadd %rax, d_counter2(%rip)
    add d_counter2(%rip), %rax
    ret

FUNC rip_movdqu
    nop
SITE rip_movdqu, rip_relative
    movdqu d_vec(%rip), %xmm0
    movq %xmm0, %rax
    pextrq $1, %xmm0, %rcx
    add %rcx, %rax
    xor %rdi, %rax
    ret

FUNC rip_vmovdqu
    nop
SITE rip_vmovdqu, rip_relative
    vmovdqu d_vec(%rip), %ymm0
    vextracti128 $1, %ymm0, %xmm1
    vpxor %xmm1, %xmm0, %xmm0
    vmovq %xmm0, %rax
    vpextrq $1, %xmm0, %rcx
    vzeroupper
    add %rcx, %rax
    ret

FUNC rip_addsd
    cvtsi2sd %rdi, %xmm0
SITE rip_addsd, rip_relative
    addsd d_dbl(%rip), %xmm0
    addsd d_dbl(%rip), %xmm0
    cvttsd2si %xmm0, %rax
    ret

/* ---------------------------------------------------------------- relative branches */

FUNC jmp_rel8
    mov $1, %eax
SITE jmp_rel8, jmp_rel
    jmp 1f
    mov $2, %eax
1:  add %rdi, %rax
    ret

FUNC jmp_rel32
    mov $1, %eax
SITE jmp_rel32, jmp_rel
    {disp32} jmp 1f
    mov $2, %eax
1:  add %rdi, %rax
    ret

FUNC jcc8_taken
    mov $1, %eax
    cmp $5, %rdi
SITE jcc8_taken, jcc
    jbe 1f
    mov $2, %eax
1:  ret

FUNC jcc8_not_taken
    mov $1, %eax
    cmp $5, %rdi
SITE jcc8_not_taken, jcc
    ja 1f
    mov $2, %eax
1:  ret

FUNC jcc32_taken
    mov $1, %eax
    cmp $5, %rdi
SITE jcc32_taken, jcc
    {disp32} jne 1f
    mov $2, %eax
1:  ret

FUNC jcc32_not_taken
    mov $1, %eax
    cmp %rdi, %rdi
SITE jcc32_not_taken, jcc
    {disp32} jne 1f
    mov $2, %eax
1:  ret

/* A back edge: the site runs 16 times, taken 15. */
FUNC jcc_loop
    xor %eax, %eax
    xor %ecx, %ecx
1:  add %rdi, %rax
    inc %ecx
    cmp $16, %ecx
SITE jcc_loop, jcc, 16
    jl 1b
    ret

/* All sixteen conditions, each site run once per pair in d_jcc_pairs (6 times); the
   taken/not-taken pattern is shifted into rax. */
    .macro JCC_ALL cc
FUNC jcc_\cc
    xor %eax, %eax
    lea d_jcc_pairs(%rip), %rsi
    mov $6, %r8d
1:  mov (%rsi), %edx
    mov 4(%rsi), %ecx
    shl $1, %rax
    cmp %ecx, %edx
SITE jcc_\cc, jcc, 6
    j\cc 2f
    jmp 3f
2:  or $1, %rax
3:  add $8, %rsi
    dec %r8d
    jnz 1b
    ret
    .endm

    JCC_ALL o
    JCC_ALL no
    JCC_ALL b
    JCC_ALL ae
    JCC_ALL e
    JCC_ALL ne
    JCC_ALL be
    JCC_ALL a
    JCC_ALL s
    JCC_ALL ns
    JCC_ALL p
    JCC_ALL np
    JCC_ALL l
    JCC_ALL ge
    JCC_ALL le
    JCC_ALL g

/* loop: the site runs 5 times. */
FUNC loop
    mov $5, %ecx
    xor %eax, %eax
1:  add %rdi, %rax
    add %rcx, %rax
SITE loop, loop, 5
    loop 1b
    ret

/* loope: runs while ZF=1 and rcx != 0; stops on ZF=0 after 3 rounds (3 hits). */
FUNC loope
    mov $10, %ecx
    xor %eax, %eax
1:  inc %eax
    cmp $3, %eax
    setae %dl
    test %dl, %dl
SITE loope, loop, 3
    loope 1b
    shl $8, %rax
    or %rcx, %rax
    ret

/* loopne: runs while ZF=0; stops when eax reaches 4 (4 hits). */
FUNC loopne
    mov $10, %ecx
    xor %eax, %eax
1:  inc %eax
    cmp $4, %eax
SITE loopne, loop, 4
    loopne 1b
    shl $8, %rax
    or %rcx, %rax
    ret

/* addr32 loop counts in ecx only (2 hits). */
FUNC loop_ecx
    movabs $0x500000002, %rcx
    xor %eax, %eax
1:  inc %eax
SITE loop_ecx, loop, 2
    loopl 1b
    shl $40, %rax
    or %rcx, %rax
    ret

FUNC jrcxz_taken
    mov $1, %eax
    xor %ecx, %ecx
SITE jrcxz_taken, jrcxz
    jrcxz 1f
    mov $2, %eax
1:  ret

FUNC jrcxz_not_taken
    mov $1, %eax
    mov %rdi, %rcx
SITE jrcxz_not_taken, jrcxz
    jrcxz 1f
    mov $2, %eax
1:  ret

/* jecxz looks at ecx only: taken although rcx is not zero. */
FUNC jecxz
    mov $1, %eax
    movabs $0x100000000, %rcx
SITE jecxz, jrcxz
    jecxz 1f
    mov $2, %eax
1:  ret

/* ---------------------------------------------------------------- calls */

FUNC call_rel
    lea 1f(%rip), %rsi
SITE call_rel, call_rel
    call h_retcheck
1:  ret

FUNC call_reg
    lea h_retcheck(%rip), %rax
    lea 1f(%rip), %rsi
SITE call_reg, call_indirect
    call *%rax
1:  ret

FUNC call_r11
    lea h_retcheck(%rip), %r11
    lea 1f(%rip), %rsi
SITE call_r11, call_indirect
    call *%r11
1:  ret

FUNC call_rip_mem
    lea 1f(%rip), %rsi
SITE call_rip_mem, call_indirect
    call *d_fnptr(%rip)
1:  ret

FUNC call_mem
    lea d_fnptr(%rip), %rax
    lea 1f(%rip), %rsi
SITE call_mem, call_indirect
    call *(%rax)
1:  ret

/* call *(%rsp): the pointer is what rsp points at before the call pushes. */
FUNC call_rsp0
    lea h_retcheck(%rip), %rax
    push %rax
    lea 1f(%rip), %rsi
SITE call_rsp0, call_indirect
    call *(%rsp)
1:  add $8, %rsp
    ret

FUNC call_rsp8
    lea h_retcheck(%rip), %rax
    push %rax
    push $0
    lea 1f(%rip), %rsi
SITE call_rsp8, call_indirect
    call *8(%rsp)
1:  add $16, %rsp
    ret

/* disp8 0x7c + 8 no longer fits in a disp8: the slot widens it. */
FUNC call_rsp_wide
    sub $0x88, %rsp
    lea h_retcheck(%rip), %rax
    mov %rax, 0x7c(%rsp)
    lea 1f(%rip), %rsi
SITE call_rsp_wide, call_indirect
    call *0x7c(%rsp)
1:  add $0x88, %rsp
    ret

/* ---------------------------------------------------------------- indirect jumps, returns */

FUNC jmp_reg
    mov $1, %eax
    lea 1f(%rip), %rcx
SITE jmp_reg, jmp_indirect
    jmp *%rcx
    mov $2, %eax
1:  add %rdi, %rax
    ret

FUNC jmp_rip_mem
    mov $1, %eax
SITE jmp_rip_mem, jmp_indirect
    jmp *d_jmp_target(%rip)
    mov $2, %eax
.Ljt_rip:
    add %rdi, %rax
    ret

FUNC jmp_mem
    mov $1, %eax
    lea d_jmp_target2(%rip), %rcx
SITE jmp_mem, jmp_indirect
    jmp *(%rcx)
    mov $2, %eax
.Ljt_reg:
    add %rdi, %rax
    ret

    .type h_ret, @function
h_ret:
    lea 1(%rdi), %rax
SITE ret, ret
    ret

FUNC ret
    call h_ret
    add $0x100, %rax
    ret

    .type h_ret16, @function
h_ret16:
    mov 8(%rsp), %rax
    add 16(%rsp), %rax
    add %rdi, %rax
SITE ret_imm16, ret
    ret $16

FUNC ret_imm16
    mov %rsp, %rdx
    push $7
    push $9
    call h_ret16
    sub %rsp, %rdx
    shl $16, %rdx
    or %rdx, %rax
    ret

/* ---------------------------------------------------------------- no-ops */

FUNC nops
    lea 1(%rdi), %rax
SITE nop1, nop
    .byte 0x90
SITE nop2, nop
    .byte 0x66, 0x90
SITE nop3, nop
    .byte 0x0f, 0x1f, 0x00
SITE nop4, nop
    .byte 0x0f, 0x1f, 0x40, 0x00
SITE nop5, nop
    .byte 0x0f, 0x1f, 0x44, 0x00, 0x00
SITE nop6, nop
    .byte 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00
SITE nop7, nop
    .byte 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00
SITE nop8, nop
    .byte 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00
SITE nop9, nop
    .byte 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00
SITE nop10, nop
    .byte 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00
SITE nop11, nop
    .byte 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00
SITE endbr64, nop
    endbr64
SITE endbr32, nop
    endbr32
    add $2, %rax
    ret

/* ---------------------------------------------------------------- flags */

FUNC pushf
    cmp $7, %rdi
SITE pushf, pushf
    pushfq
    pop %rax
    and $0x8d5, %eax
    ret

FUNC pushfw
    cmp $7, %rdi
    xor %eax, %eax
SITE pushfw, pushf
    pushfw
    popw %ax
    and $0x8d5, %eax
    ret

/* Sets every arithmetic flag and DF from the stack; reads them back, clears DF. */
FUNC popf
    push $0xcd7
SITE popf, popf
    popfq
    pushfq
    pop %rax
    cld
    and $0xcd5, %eax
    ret

FUNC popfw
    xor %ecx, %ecx
    pushw $0x0c1
SITE popfw, popf
    popfw
    FLAGS_TO_RAX
    ret

/* ---------------------------------------------------------------- plain */

FUNC rep_movsb
    sub $32, %rsp
    lea d_str(%rip), %rsi
    mov %rsp, %rdi
    mov $d_str_len, %ecx
SITE rep_movsb, plain
    rep movsb
    mov (%rsp), %rax
    add 5(%rsp), %rax
    lea d_str(%rip), %rdx
    sub %rdx, %rsi
    sub %rsp, %rdi
    shl $8, %rdi
    or %rsi, %rdi
    shl $48, %rdi
    xor %rdi, %rax
    add $32, %rsp
    ret

FUNC rep_stosq
    sub $32, %rsp
    mov %rdi, %rax
    mov %rsp, %rdi
    mov $4, %ecx
SITE rep_stosq, plain
    rep stosq
    mov (%rsp), %rax
    add 8(%rsp), %rax
    add 16(%rsp), %rax
    add 24(%rsp), %rax
    add %rcx, %rax
    add $32, %rsp
    ret

FUNC lock_xadd
    movq $100, -8(%rsp)
    mov %rdi, %rax
SITE lock_xadd, plain
    lock xadd %rax, -8(%rsp)
    shl $16, %rax
    add -8(%rsp), %rax
    ret

FUNC lock_cmpxchg
    movq $5, -8(%rsp)
    mov $5, %eax
    mov %rdi, %rcx
SITE lock_cmpxchg, plain
    lock cmpxchg %rcx, -8(%rsp)
    setz %al
    movzbl %al, %eax
    shl $16, %rax
    add -8(%rsp), %rax
    ret

/* The canary read through fs equals the one read through the TCB's self pointer. */
FUNC fs_load
    nop
SITE fs_load, plain
    mov %fs:0x28, %rax
    mov %fs:0, %rcx
    cmp 0x28(%rcx), %rax
    sete %al
    movzbl %al, %eax
    add %rdi, %rax
    ret

/* Leaf functions keeping data in the red zone across the probe site. */
    .macro FILL_RED_ZONE
    mov $16, %ecx
    mov %rsp, %rdx
1:  sub $8, %rdx
    lea (%rdi,%rcx), %rax
    mov %rax, (%rdx)
    dec %ecx
    jnz 1b
    .endm

    .macro SUM_RED_ZONE
    xor %eax, %eax
    mov $16, %ecx
    mov %rsp, %rdx
1:  sub $8, %rdx
    add (%rdx), %rax
    rol $3, %rax
    dec %ecx
    jnz 1b
    .endm

FUNC redzone_plain
    FILL_RED_ZONE
SITE redzone_plain, plain
    add $1, %rdi
    SUM_RED_ZONE
    add %rdi, %rax
    ret

FUNC redzone_rip
    FILL_RED_ZONE
SITE redzone_rip, rip_relative
    mov d_quad(%rip), %rsi
    SUM_RED_ZONE
    xor %rsi, %rax
    ret

FUNC redzone_jcc
    FILL_RED_ZONE
    cmp %rdi, %rdi
SITE redzone_jcc, jcc
    je 2f
    xor %rdi, %rdi
2:  SUM_RED_ZONE
    add %rdi, %rax
    ret

FUNC xchg
    mov $3, %eax
SITE xchg, plain
    xchg %rdi, %rax
    shl $8, %rax
    or %rdi, %rax
    ret

FUNC cmov
    mov $3, %eax
    cmp $1, %rdi
SITE cmov, plain
    cmovne %rdi, %rax
    ret

FUNC setcc
    mov $0x100, %eax
    cmp $1, %rdi
SITE setcc, plain
    setg %al
    ret

FUNC div
    mov %rdi, %rax
    xor %edx, %edx
    mov $7, %ecx
SITE div, plain
    div %rcx
    shl $8, %rax
    or %rdx, %rax
    ret

FUNC imul
    nop
SITE imul, plain
    imul $37, %rdi, %rax
    ret

FUNC bt
    xor %eax, %eax
SITE bt, plain
    bt $3, %rdi
    setc %al
    ret

FUNC push_pop
    nop
SITE push_reg, plain
    push %rdi
SITE pop_reg, plain
    pop %rax
    add $1, %rax
    ret

FUNC mov_rsp
    push %rdi
SITE mov_rsp, plain
    mov (%rsp), %rax
    pop %rcx
    add %rcx, %rax
    ret

FUNC enter_leave
SITE enter, plain
    enter $16, $0
    mov %rdi, -8(%rbp)
    mov -8(%rbp), %rax
    mov %rbp, %rcx
    sub %rsp, %rcx
    add %rcx, %rax
SITE leave, plain
    leave
    ret

FUNC movabs
    nop
SITE movabs, plain
    movabs $0x1122334455667788, %rax
    xor %rdi, %rax
    ret

FUNC sse_plain
    movq %rdi, %xmm0
SITE sse_plain, plain
    paddq %xmm0, %xmm0
    movq %xmm0, %rax
    ret

FUNC avx2_plain
    vmovq %rdi, %xmm0
    vpbroadcastq %xmm0, %ymm0
SITE avx2_plain, plain
    vpaddq %ymm0, %ymm0, %ymm1
    vextracti128 $1, %ymm1, %xmm1
    vmovq %xmm1, %rax
    vzeroupper
    ret

/* ---------------------------------------------------------------- refused, never run */

REJECT syscall
    syscall
    ret

REJECT int3
    int3
    ret

REJECT ud2
    ud2

REJECT hlt
    hlt
    ret

REJECT int80
    int $0x80
    ret

REJECT in
    in (%dx), %al
    ret

REJECT lcall
    lcall *(%rax)
    ret

REJECT xbegin
    xbegin 1f
1:  ret

/* ---------------------------------------------------------------- out-of-line area */

    .text
    .align 64
    .globl xol_area
    .type xol_area, @object
xol_area:
    .fill 8192, 1, 0xcc
    .size xol_area, . - xol_area

/* ---------------------------------------------------------------- main */

    .macro ENTRY name, input
    .pushsection .rodata.str1.1, "aMS", @progbits, 1
.Lname_\name:
    .asciz "\name"
    .popsection
    .quad .Lname_\name, m_\name, \input
    .endm

    .section .data.rel.ro, "aw"
    .align 8
table:
    ENTRY rip_load, 0x55
    ENTRY rip_store, 0x1234
    ENTRY rip_store_imm, 0x10
    ENTRY rip_cmpb_imm, 0
    ENTRY rip_cmpl_imm, 0
    ENTRY rip_cmpw_imm, 0
    ENTRY rip_cmpq_imm8, 0
    ENTRY rip_addq_imm, 0
    ENTRY rip_push, 0xff
    ENTRY rip_pop, 0x4321
    ENTRY rip_lea, 0
    ENTRY rip_lock_xadd, 23
    ENTRY rip_movdqu, 0xabc
    ENTRY rip_vmovdqu, 0
    ENTRY rip_addsd, 10
    ENTRY jmp_rel8, 40
    ENTRY jmp_rel32, 41
    ENTRY jcc8_taken, 5
    ENTRY jcc8_not_taken, 5
    ENTRY jcc32_taken, 6
    ENTRY jcc32_not_taken, 6
    ENTRY jcc_loop, 3
    ENTRY jcc_o, 0
    ENTRY jcc_no, 0
    ENTRY jcc_b, 0
    ENTRY jcc_ae, 0
    ENTRY jcc_e, 0
    ENTRY jcc_ne, 0
    ENTRY jcc_be, 0
    ENTRY jcc_a, 0
    ENTRY jcc_s, 0
    ENTRY jcc_ns, 0
    ENTRY jcc_p, 0
    ENTRY jcc_np, 0
    ENTRY jcc_l, 0
    ENTRY jcc_ge, 0
    ENTRY jcc_le, 0
    ENTRY jcc_g, 0
    ENTRY loop, 100
    ENTRY loope, 0
    ENTRY loopne, 0
    ENTRY loop_ecx, 0
    ENTRY jrcxz_taken, 7
    ENTRY jrcxz_not_taken, 7
    ENTRY jecxz, 0
    ENTRY call_rel, 11
    ENTRY call_reg, 12
    ENTRY call_r11, 13
    ENTRY call_rip_mem, 14
    ENTRY call_mem, 15
    ENTRY call_rsp0, 16
    ENTRY call_rsp8, 17
    ENTRY call_rsp_wide, 18
    ENTRY jmp_reg, 20
    ENTRY jmp_rip_mem, 21
    ENTRY jmp_mem, 22
    ENTRY ret, 30
    ENTRY ret_imm16, 31
    ENTRY nops, 50
    ENTRY pushf, 3
    ENTRY pushfw, 9
    ENTRY popf, 0
    ENTRY popfw, 0
    ENTRY rep_movsb, 0
    ENTRY rep_stosq, 0x101
    ENTRY lock_xadd, 9
    ENTRY lock_cmpxchg, 0x77
    ENTRY fs_load, 0x60
    ENTRY redzone_plain, 0x1000
    ENTRY redzone_rip, 0x2000
    ENTRY redzone_jcc, 0x3000
    ENTRY xchg, 0x44
    ENTRY cmov, 0x45
    ENTRY setcc, 2
    ENTRY div, 1000
    ENTRY imul, 3
    ENTRY bt, 8
    ENTRY push_pop, 0x99
    ENTRY mov_rsp, 0x98
    ENTRY enter_leave, 0x97
    ENTRY movabs, 0xff
    ENTRY sse_plain, 21
    ENTRY avx2_plain, 22
table_end:

    .section .rodata.str1.1, "aMS", @progbits, 1
fmt:
    .asciz "%-16s %#lx\n"
mode_w:
    .asciz "w"

    .text
    .globl main
    .type main, @function
main:
    push %rbx
    push %r12
    push %r13
    /* `insn_matrix FILE` writes to FILE: a tracer that spawns it need not pipe stdout. */
    cmp $2, %edi
    jl 3f
    mov 8(%rsi), %rdi
    lea mode_w(%rip), %rsi
    mov stdout@GOTPCREL(%rip), %rdx
    mov (%rdx), %rdx
    call freopen@PLT
    test %rax, %rax
    jnz 3f
    mov $2, %eax
    jmp 4f
3:  lea table(%rip), %rbx
    lea table_end(%rip), %r12
1:  cmp %r12, %rbx
    jae 2f
    mov 16(%rbx), %rdi
    call *8(%rbx)
    lea fmt(%rip), %rdi
    mov (%rbx), %rsi
    mov %rax, %rdx
    xor %eax, %eax
    call printf@PLT
    add $24, %rbx
    jmp 1b
2:  xor %eax, %eax
4:  pop %r13
    pop %r12
    pop %rbx
    ret

    .section .note.GNU-stack, "", @progbits
