/* Calls abort() after a little work: the target of examples/abort_core.up. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    fprintf(stderr, "about to abort\n");
    abort();
}
