/* A call through generated code: main copies a stub into an anonymous executable page
 * (push rbp; mov rbp,rsp; movabs rax,jit_target; call rax; pop rbp; ret) and calls it, so
 * jit_target's caller lies in no file mapping, with a frame-pointer frame only. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

volatile int jit_sink;

__attribute__((noipa)) void jit_target(void) { jit_sink++; }

int main(void) {
    unsigned char stub[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
                            0xff, 0xd0, 0x5d, 0xc3};
    uintptr_t target = (uintptr_t)&jit_target;
    memcpy(stub + 6, &target, 8);
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 1;
    memcpy(page, stub, sizeof stub);
    ((void (*)(void))page)();
    printf("jit %p\n", page);
    return 0;
}
