/* popf at a probe site setting the ID flag (bit 21): f() pushes 0x200202, pops it into
   the flags and reads them back; exit status 9 when ID did not follow, 0 after 1000 calls. */
    .section .note.GNU-stack, "", @progbits
    .text
    .globl main
main:
    push %rbx
    mov $1000, %ebx
1:  call f
    dec %ebx
    jnz 1b
    pop %rbx
    xor %eax, %eax
    ret
    .globl f
    .type f, @function
f:
    pushq $0x200202
    .globl popf_site
    .type popf_site, @function
popf_site:
    popf
    pushf
    pop %rax
    pushq $0x202
    popf
    cmp $0x200202, %rax
    jne 2f
    ret
2:  mov $60, %eax
    mov $9, %edi
    syscall
