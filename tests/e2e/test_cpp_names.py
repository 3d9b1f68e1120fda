"""C++ functions by their readable names: matching, wildcards, the cpp: prefix, overloads,
templates and operators; func/ustack/-l demangled unless --no-demangle.

tests/programs/dwarf_cpp.cc calls each of its functions 4 times.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def prog(builder):
    return builder.build("dwarf_cpp.cc", "-O1")


def test_demangled_matching(uprobe, prog):
    script = (
        f'uprobe:{prog}:cpp:"ns::K::f" {{ @f[func] = count(); }} '
        f'uprobe:{prog}:"ns::K::operator()" {{ @call = count(); }} '
        f'uprobe:{prog}:"ns::biggest<long>" {{ @big = count(); }} '
        f'uprobe:{prog}:"ns::inner::g(ns::Point const*)" {{ @g[args.p->x, args.p.y] = count(); }} '
        f"uprobe:{prog}:_ZN2ns1KpLERKNS_5PointE {{ @plus = count(); }}"
    )
    r = uprobe.run("-e", script, "-c", str(prog))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "295\n"
    assert r.out == ("\n\n@big: 4\n@call: 4\n@f[ns::K::f(double)]: 4\n@f[ns::K::f(int)]: 4\n"
                     "@g[2, 5]: 4\n@plus: 4\n")


def test_wildcard_and_raw_names(uprobe, prog):
    r = uprobe.run("--no-demangle", "-e", f'uprobe:{prog}:"ns::K::*" {{ @[func] = count(); }}',
                   "-c", str(prog))
    assert r.returncode == 0, r.stderr
    # Every member called 4 times (the constructor is inlined at -O1), names raw.
    assert r.out == ("\n\n@[_ZN2ns1K1fEd]: 4\n@[_ZN2ns1K1fEi]: 4\n"
                     "@[_ZN2ns1KpLERKNS_5PointE]: 4\n@[_ZNK2ns1KclEi]: 4\n")


def test_listing(uprobe, prog):
    r = uprobe.run("-l", f'uprobe:{prog}:"ns::K::f*"')
    assert r.stdout.splitlines() == [f'uprobe:{prog}:"ns::K::f(double)"',
                                     f'uprobe:{prog}:"ns::K::f(int)"']
    raw = uprobe.run("--no-demangle", "-l", f"uprobe:{prog}:_ZN2ns1K1f*")
    assert raw.stdout.splitlines() == [f"uprobe:{prog}:_ZN2ns1K1fEd",
                                       f"uprobe:{prog}:_ZN2ns1K1fEi"]
    # What -l prints can be pasted back as a probe.
    r = uprobe.run("-e", f'uprobe:{prog}:"ns::K::f(int)" {{ @ = count(); }}', "-c", str(prog))
    assert r.out == "\n\n@: 4\n"


@pytest.mark.parametrize("raw", [False, True])
def test_stacks_and_symbols_demangled_unless_raw(uprobe, prog, raw):
    flags = ["--no-demangle"] if raw else []
    r = uprobe.run(*flags, "-e", f'uprobe:{prog}:"ns::biggest<int>" '
                   '{ @[ustack(1), usym(reg("rip"))] = count(); }', "-c", str(prog))
    assert r.returncode == 0, r.stderr
    name = "_ZN2ns7biggestIiEET_S1_S1_" if raw else "int ns::biggest<int>(int, int)"
    assert r.out == f"\n\n@[\n        {name}+0\n, {name}]: 4\n"


def test_args_of_member_functions(uprobe, prog):
    """`this` and reference parameters are pointers: K::f(int) sees base grow by
    p.x + p.y = 7 after each `k += p` (main's loop), starting at 3."""
    r = uprobe.run("-e", f'uprobe:{prog}:"ns::K::f(int)" {{ @[args.this->base, args.v] = '
                   f'count(); }} uprobe:{prog}:"ns::K::operator+=" {{ @p[args.p->x, args.p.y] '
                   "= count(); }", "-c", str(prog))
    assert r.returncode == 0, r.stderr
    assert r.out == "\n\n@[3, 0]: 1\n@[10, 1]: 1\n@[17, 2]: 1\n@[24, 3]: 1\n@p[2, 5]: 4\n"
