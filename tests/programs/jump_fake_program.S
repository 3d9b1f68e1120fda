/* A stand-in for the compiled in-target program, for testing the jump path's mechanics
   (trampolines, patching, detach) apart from the code generator. ABI as in
   docs/jump-path.md: rdi = frame (user_regs_struct), rsi = shared area, rdx = site id,
   rcx = return trampoline. Position-independent, no relocations: assembled, then copied
   out of .text with objcopy.
   Shared area: [0x1000 + 8*site] entry hits; [0x2000 + 8*site] sum of rdi at the site;
   [0x3000] return hits, [0x3008] sum of retvals, [0x3010] flags seen at entry (last);
   [0x4000] shadow depth, [0x4008 + 16*n] (orig, slot) -- one thread only;
   [0x5000 + 32*t] for t = rdi >> 32 (< 64): count, sum, first, last of rdi's low 32 bits
   (each thread t writes only its own slot). */
        .text
        .globl jp_hit, jp_ret_enter, jp_ret_exit
jp_hit:
        lock incq 0x1000(%rsi,%rdx,8)
        movq 0x70(%rdi), %rax          /* frame->rdi: the first argument */
        lock addq %rax, 0x2000(%rsi,%rdx,8)
        movq 0x90(%rdi), %rax          /* frame->eflags */
        movq %rax, 0x3010(%rsi)
        movq 0x70(%rdi), %rax
        movq %rax, %r8
        shrq $32, %r8
        andq $63, %r8
        shlq $5, %r8
        movl %eax, %r9d
        cmpq $0, 0x5000(%rsi,%r8)
        jne 1f
        movq %r9, 0x5010(%rsi,%r8)
1:      incq 0x5000(%rsi,%r8)
        addq %r9, 0x5008(%rsi,%r8)
        movq %r9, 0x5018(%rsi,%r8)
        /* clobber what the ABI lets us clobber, flags included */
        xorl %eax, %eax
        movq $-1, %rcx
        movq $-1, %r8
        movq $-1, %r9
        movq $-1, %r10
        movq $-1, %r11
        cmpq %rcx, %rax
        ret
jp_ret_enter:
        movq 0x98(%rdi), %r8           /* frame->rsp: the return address slot */
        movq (%r8), %r9
        movq 0x4000(%rsi), %r10
        shlq $4, %r10
        movq %r9, 0x4008(%rsi,%r10)
        movq %r8, 0x4010(%rsi,%r10)
        incq 0x4000(%rsi)
        movq %rcx, (%r8)
        xorl %eax, %eax
        ret
jp_ret_exit:
        lock incq 0x3000(%rsi)
        movq 0x50(%rdi), %rax          /* frame->rax: the return value */
        lock addq %rax, 0x3008(%rsi)
        decq 0x4000(%rsi)
        movq 0x4000(%rsi), %r10
        shlq $4, %r10
        movq 0x4008(%rsi,%r10), %rax
        movq $-1, %rcx
        movq $-1, %r11
        ret
