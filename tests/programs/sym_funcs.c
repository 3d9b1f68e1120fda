/* Symbols for the ELF/resolve/listing tests: global, static, weak, alias functions and a
 * data object. With an argument (a shared library path) it dlopen()s it; it then prints
 * the runtime addresses of sym_add and of the library's symlib_square, says "ready" and
 * blocks reading stdin, so tests can inspect its maps without sleeping. */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

int sym_counter = 7;

__attribute__((noinline)) int sym_add(int a, int b)
{
    sym_counter += a;
    return a * 3 + b + sym_counter;
}

__attribute__((noinline)) static int sym_static_helper(int x)
{
    return sym_add(x, x + 1) * 2;
}

__attribute__((noinline, weak)) int sym_weak(int x)
{
    return sym_static_helper(x) + 5;
}

int sym_alias(int a, int b) __attribute__((alias("sym_add")));

__attribute__((noinline)) long sym_loop(long n)
{
    long s = 0;
    for (long i = 0; i < n; i++)
        s += i * sym_counter;
    return s;
}

int main(int argc, char **argv)
{
    void *lib = NULL;
    void *square = NULL;
    if (argc > 1) {
        lib = dlopen(argv[1], RTLD_NOW);
        if (!lib) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        square = dlsym(lib, "symlib_square");
    }
    printf("sym_add=%p symlib_square=%p\n", (void *)sym_add, square);
    printf("ready %d %ld\n", sym_weak(argc), sym_loop(3));
    fflush(stdout);
    char buf[1];
    while (read(0, buf, 1) > 0)
        ;
    return 0;
}
