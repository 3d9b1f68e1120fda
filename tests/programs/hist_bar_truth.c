/* Ground truth for hist bar lengths: bpftrace's expression
 * `int bar_width = values.at(i)/(float)max_value*max_width;` with a uint64_t count,
 * an int maximum and max_width = 52. stdin: "count max" lines; stdout: one width each. */
#include <stdint.h>
#include <stdio.h>

int main(void)
{
    unsigned long long count;
    int max_value;
    int max_width = 52;
    while (scanf("%llu %d", &count, &max_value) == 2) {
        uint64_t v = count;
        int bar_width = v / (float)max_value * max_width;
        printf("%d\n", bar_width);
    }
    return 0;
}
