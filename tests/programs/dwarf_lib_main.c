/* Calls lib_visit() from dwarf_lib.c on a two-item list, N times (argv[1]); prints the sum. */
#include <stdio.h>
#include <stdlib.h>

struct lib_item {
    int key;
    char tag[8];
    struct lib_item *next;
};
long lib_visit(const struct lib_item *item, int depth);

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 3;
    struct lib_item second = {20, "two", NULL};
    struct lib_item first = {10, "one", &second};
    long total = 0;
    for (int i = 1; i <= n; i++)
        total += lib_visit(&first, i);
    printf("total %ld\n", total);
    return 0;
}
