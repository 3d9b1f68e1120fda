/* A library whose constructor calls ctor_probe(): the stack there runs through the
 * dynamic linker (dlopen -> _dl_open -> ... -> _dl_init -> call_init -> the constructor). */
volatile int stack_ctor_sink;

__attribute__((noipa)) void ctor_probe(int x) { stack_ctor_sink += x; }

__attribute__((constructor)) static void stack_ctor_init(void) {
    ctor_probe(7);
    stack_ctor_sink++;
}
