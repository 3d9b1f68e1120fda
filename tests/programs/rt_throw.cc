// thrower() throws through middle() (probed, with a return probe) on odd inputs; on
// multiples of 3 rethrower() catches and rethrows, and Guard's destructor runs in a
// cleanup landing pad, so every unwinder entry point is crossed.
#include <cstdio>
#include <stdexcept>

static int guards;

struct Guard {
    ~Guard() { guards++; }
};

__attribute__((noinline)) int thrower(int i) {
    if (i % 2)
        throw std::runtime_error("odd");
    return i;
}

__attribute__((noinline)) int middle(int i) {
    Guard g;
    int r = thrower(i);
    return r + 1;
}

__attribute__((noinline)) int rethrower(int i) {
    try {
        return middle(i);
    } catch (...) {
        if (i % 3 == 0)
            throw;
        return -2;
    }
}

__attribute__((noinline)) int outer(int i) {
    try {
        return rethrower(i);
    } catch (const std::exception &) {
        return -1;
    }
}

int main() {
    long sum = 0;
    int caught = 0, swallowed = 0;
    for (int i = 0; i < 40; i++) {
        int r = outer(i);
        if (r == -1)
            caught++;
        else if (r == -2)
            swallowed++;
        else
            sum += r;
    }
    std::printf("sum=%ld caught=%d swallowed=%d guards=%d\n", sum, caught, swallowed, guards);
    return 0;
}
