/* Code before main in the executable (.preinit_array, a constructor) calling a probed
 * function, linked against ctor_lib.c (-lctor); with an argument, a second copy of the
 * library is loaded by dlopen and its tallies printed too. Prints every tally: the
 * ground truth for exact probe counts. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void ctor_lib_tallies(int *work, int *resolver, int *randrs);
int ctor_lib_pick(void);

static int exe_calls;
static int main_randrs;

__attribute__((noinline)) int exe_work(int n)
{
    exe_calls++;
    __asm__ volatile("" ::: "memory");
    return n + 1;
}

static void early(int argc, char **argv, char **envp)
{
    (void)argc; (void)argv; (void)envp;
    exe_work(100);
}

__attribute__((section(".preinit_array"), used)) static void (*preinit)(int, char **, char **) = early;

__attribute__((constructor)) static void exe_init(void)
{
    exe_work(200);
    exe_work(201);
}

int main(int argc, char **argv)
{
    int work, resolver, randrs;
    unsigned seed = 2;
    exe_work(1);
    for (int i = 0; i < 4; i++) {
        main_randrs++;
        if (rand_r(&seed) < 0)
            return 1;
    }
    if (ctor_lib_pick() != 7)
        return 1;
    ctor_lib_tallies(&work, &resolver, &randrs);
    printf("exe %d lib work %d resolver %d rand_r %d main rand_r %d\n", exe_calls, work, resolver,
           randrs, main_randrs);
    if (argc > 1) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        void (*tallies)(int *, int *, int *) = (void (*)(int *, int *, int *))dlsym(h, "ctor_lib_tallies");
        tallies(&work, &resolver, &randrs);
        printf("dlopened work %d resolver %d rand_r %d\n", work, resolver, randrs);
        dlclose(h);
    }
    return 0;
}
