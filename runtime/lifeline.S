/* The in-target SIGTRAP handler of runtime/lifeline.py (its bytes are embedded there; a
   test assembles this file and compares). Position independent; writes nothing but the
   interrupted context. The tables are filled in by the tracer through /proc/PID/mem.
   rdi = signo, rsi = siginfo, rdx = ucontext. */
    .set UC_RSP, 40 + 15 * 8
    .set UC_RIP, 40 + 16 * 8
    .set SITE_BITS, 14
    .set RET_BITS, 13
    .set GOLDEN, 0x9E3779B97F4A7C15
    .text
start:
handler:
    cmpl $0x80, 8(%rsi)              /* si_code SI_KERNEL: an int3 */
    jne chain
    mov UC_RIP(%rdx), %r8
    lea -1(%r8), %r9                 /* the int3's address */
    mov %r9, %rax
    movabs $GOLDEN, %rcx
    imul %rcx, %rax
    shr $(64 - SITE_BITS), %rax
    lea sites(%rip), %r10
1:  mov %rax, %rcx
    shl $4, %rcx
    mov (%r10,%rcx), %r11
    test %r11, %r11
    jz no_site
    cmp %r9, %r11
    je 2f
    inc %rax
    and $((1 << SITE_BITS) - 1), %rax
    jmp 1b
2:  mov 8(%r10,%rcx), %r11           /* where to go on: 0 gone, 1 trampoline */
    cmp $1, %r11
    je trampoline
    test %r11, %r11
    jz no_site
    mov %r11, UC_RIP(%rdx)           /* the displaced instruction, out of line */
    ret
trampoline:
    mov UC_RSP(%rdx), %r9
    sub $8, %r9                      /* the stack slot the `ret` popped */
    mov %r9, %rax
    movabs $GOLDEN, %rcx
    imul %rcx, %rax
    shr $(64 - RET_BITS), %rax
    lea returns(%rip), %r10
1:  mov %rax, %rcx
    shl $4, %rcx
    mov (%r10,%rcx), %r11
    test %r11, %r11
    jz chain
    cmp %r9, %r11
    je 2f
    inc %rax
    and $((1 << RET_BITS) - 1), %rax
    jmp 1b
2:  mov 8(%r10,%rcx), %r11
    mov %r11, UC_RIP(%rdx)           /* the real return address */
    ret
no_site:
    /* No int3 before rip: a stop whose tracer moved rip (to a slot, past an emulated
       instruction) and died before resuming; the thread is where it should be. */
    cmpb $0xcc, -1(%r8)
    je chain
    cmpw $0x03cd, -2(%r8)
    je chain
    ret
chain:
    /* The program's own SIGTRAP: what its own disposition would have done. */
    mov prog_handler(%rip), %rax
    cmp $1, %rax
    je 9f                            /* SIG_IGN */
    test %rax, %rax
    jz 4f
    jmp *%rax
4:  mov $13, %eax                    /* SIG_DFL: rt_sigaction(SIGTRAP, &dfl, 0, 8) */
    mov $5, %edi
    lea dfl_action(%rip), %rsi
    xor %edx, %edx
    mov $8, %r10d
    syscall
    mov $39, %eax                    /* getpid */
    syscall
    mov %rax, %r8
    mov $186, %eax                   /* gettid */
    syscall
    mov %r8, %rdi
    mov %rax, %rsi
    mov $5, %edx
    mov $234, %eax                   /* tgkill: delivered once the handler returns */
    syscall
9:  ret
restorer:
    mov $15, %eax                    /* rt_sigreturn */
    syscall
    .org 0x400
prog_handler: .quad 0
prog_flags: .quad 0
prog_restorer: .quad 0
prog_mask: .quad 0
dfl_action: .quad 0, 0, 0, 0
    .set sites, start + 0x1000
    .set returns, sites + (16 << SITE_BITS)
