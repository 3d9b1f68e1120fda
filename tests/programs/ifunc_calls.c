/* IFUNC'd string functions called through the PLT: strlen, strchr and memcpy on a marker
 * string, N times each (N from argv[1]); prints the count only, so that no other strlen of
 * the marker happens (printf("%s") would call strlen itself). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    char marker[32] = "ifunc-marker";
    char dst[32];
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        total += strlen(marker);
        total += (size_t)(strchr(marker, '-') - marker);
        memcpy(dst, marker, 13);
    }
    printf("calls %d %zu %d\n", n, total, dst[0]);
    return 0;
}
