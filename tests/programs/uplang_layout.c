/* Ground truth for uplang's C layout: gcc's sizeof/_Alignof/offsetof of the structs that
 * tests/uplang/test_layout.py writes in a script. One line per member and per type. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct A { char c; int64_t q; int16_t s; };
struct B { int8_t a; int32_t b[3]; char name[5]; };
union U { char b[3]; int32_t i; double d; };
struct Node { int32_t id; struct Node *next; char tag; };
struct Outer { char c; struct A inner; union U u; uint16_t tail; };
struct Scalars { unsigned char a; unsigned short b; unsigned int c; unsigned long d; float f;
                 _Bool z; long long ll; signed char sc; size_t sz; };
enum E { E0, E1 };
struct WithEnum { char c; enum E e; char d; };
struct Arrays { char c; struct A as[2]; uint16_t w[3]; };

#define M(T, f) printf("%s %s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))
#define S(T) printf("%s = %zu %zu\n", #T, sizeof(T), _Alignof(T))

int main(void)
{
    S(struct A); M(struct A, c); M(struct A, q); M(struct A, s);
    S(struct B); M(struct B, a); M(struct B, b); M(struct B, name);
    S(union U); M(union U, b); M(union U, i); M(union U, d);
    S(struct Node); M(struct Node, id); M(struct Node, next); M(struct Node, tag);
    S(struct Outer); M(struct Outer, c); M(struct Outer, inner); M(struct Outer, u);
    M(struct Outer, tail);
    S(struct Scalars); M(struct Scalars, a); M(struct Scalars, b); M(struct Scalars, c);
    M(struct Scalars, d); M(struct Scalars, f); M(struct Scalars, z); M(struct Scalars, ll);
    M(struct Scalars, sc); M(struct Scalars, sz);
    S(struct WithEnum); M(struct WithEnum, c); M(struct WithEnum, e); M(struct WithEnum, d);
    S(struct Arrays); M(struct Arrays, c); M(struct Arrays, as); M(struct Arrays, w);
    return 0;
}
