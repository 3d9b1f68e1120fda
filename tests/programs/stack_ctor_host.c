/* stack_ctor_host LIB: dlopen(LIB) (its constructor runs inside the dynamic linker), then
 * print "loaded" and dlclose it. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    printf("loaded\n");
    dlclose(h);
    return 0;
}
