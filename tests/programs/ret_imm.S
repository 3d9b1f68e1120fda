/* callee() returns with `ret $16`, popping the two words its caller pushed; main calls it
   1000 times and exits 0 when every call returned to the right place with rsp restored. */
    .section .note.GNU-stack, "", @progbits
    .text
    .globl callee
    .type callee, @function
callee:
    mov 8(%rsp), %rax
    add 16(%rsp), %rax
    ret $16
    .globl main
    .type main, @function
main:
    push %rbx
    push %r12
    mov $1000, %ebx
    mov %rsp, %r12
1:  pushq $2
    pushq $3
    call callee
    cmp $5, %rax
    jne 2f
    cmp %rsp, %r12
    jne 2f
    dec %ebx
    jnz 1b
    pop %r12
    pop %rbx
    xor %eax, %eax
    ret
2:  mov $60, %eax
    mov $9, %edi
    syscall
