/* Linked with sys_lib.so: its constructor calls lib_work() 3 times, main twice more. */
#include <stdio.h>

int lib_work(int i);

int main(void) {
    printf("%d\n", lib_work(1) + lib_work(2));
    return 0;
}
