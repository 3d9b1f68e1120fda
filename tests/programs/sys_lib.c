/* A library whose constructor calls lib_work() 3 times before main runs. */
__attribute__((noinline)) int lib_work(int i) {
    __asm__ volatile("" ::: "memory");
    return i + 1;
}

__attribute__((constructor)) static void init(void) {
    for (int i = 0; i < 3; i++)
        lib_work(i);
}
