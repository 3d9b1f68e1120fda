/* Ground truth for the printf tests: glibc's snprintf fed the way bpftrace 0.17 feeds it,
 * every integer argument as a 64-bit value, strings as char pointers.
 * stdin lines: "i<TAB>format<TAB>decimal-uint64" or "s<TAB>format<TAB>text";
 * stdout: one "<result>" line per input line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char line[4096], out[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char *kind = strtok(line, "\t");
        char *fmt = strtok(NULL, "\t");
        char *arg = strtok(NULL, "\t");
        if (!kind || !fmt)
            return 2;
        if (!arg)
            arg = "";
        if (kind[0] == 'i')
            snprintf(out, sizeof out, fmt, (uint64_t)strtoull(arg, NULL, 10));
        else
            snprintf(out, sizeof out, fmt, arg);
        printf("<%s>\n", out);
    }
    return 0;
}
