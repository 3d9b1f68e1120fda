/* The parent and a forked child each call work() a known number of times. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long work(long i) {
    __asm__ volatile("" ::: "memory");
    return i;
}

int main(void) {
    long sum = 0;
    for (long i = 0; i < 100; i++)
        sum += work(i);
    pid_t child = fork();
    long n = child == 0 ? 300 : 200;
    for (long i = 0; i < n; i++)
        sum += work(i);
    if (child == 0) {
        printf("child %d sum=%ld\n", getpid(), sum);
        return 0;
    }
    int st;
    waitpid(child, &st, 0);
    printf("parent %d sum=%ld child=%d\n", getpid(), sum, WEXITSTATUS(st));
    return 0;
}
