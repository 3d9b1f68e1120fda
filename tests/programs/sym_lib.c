/* A small shared library for the resolve/listing tests. */
static int symlib_calls;

__attribute__((noinline)) static int symlib_bump(int n)
{
    symlib_calls += n;
    return symlib_calls;
}

int symlib_square(int x)
{
    return x * x + symlib_bump(1);
}

int symlib_cube(int x)
{
    return x * x * x + symlib_bump(2);
}
