// C++ names: namespaces, a class with overloads and operators, templates. Each is called
// 4 times; prints the total.
#include <cstdio>
namespace ns {
struct Point { int x; int y; };
class K {
public:
    int base;
    explicit K(int b) : base(b) {}
    __attribute__((noinline)) int f(int v) { return base + v; }
    __attribute__((noinline)) double f(double v) { return base + v; }
    __attribute__((noinline)) int operator()(int v) const { return base * v; }
    __attribute__((noinline)) K& operator+=(const Point& p) { base += p.x + p.y; return *this; }
};
template <typename T> __attribute__((noinline)) T biggest(T a, T b) { return a > b ? a : b; }
namespace inner { __attribute__((noinline)) int g(const Point* p) { return p->x * p->y; } }
}
int main() {
    ns::K k(3);
    long total = 0;
    ns::Point p{2, 5};
    for (int i = 0; i < 4; i++) {
        total += k.f(i);
        total += (long)k.f(1.5);
        total += k(i);
        k += p;
        total += ns::biggest<int>(i, 2) + (long)ns::biggest<long>(i, 3);
        total += ns::inner::g(&p);
    }
    std::printf("%ld\n", total);
    return 0;
}
