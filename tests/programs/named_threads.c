/* Process and thread names, parent and addresses for the comm-family builtins and ntop():
 * the leader renames itself "leaderprog", a second thread "worker7"; each calls
 * tick(who, ipv4, ipv6) once with 127.0.0.1 (as it lies in memory) and ::1. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>

static const uint8_t loopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

__attribute__((noinline)) int tick(int who, uint32_t ipv4, const uint8_t *ipv6)
{
    __asm__ volatile("" ::: "memory");
    return who + (int)ipv4 + ipv6[15];
}

static void *worker(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "worker7");
    tick(1, 0x0100007f, loopback6);
    return NULL;
}

int main(void)
{
    pthread_t t;
    prctl(PR_SET_NAME, "leaderprog");
    tick(0, 0x0100007f, loopback6);
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 1;
    pthread_join(t, NULL);
    puts("done");
    return 0;
}
