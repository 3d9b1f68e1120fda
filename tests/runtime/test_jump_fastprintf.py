"""The drain's direct printf formatter against the generic one (runtime.output.printf)."""

from __future__ import annotations

import pytest

from runtime.jump.fastprintf import compile_fast_printf
from runtime.output.printf import PrintfFormat

INTS = [0, 1, -1, 42, -42, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -(2**31), 2**32 + 5,
        2**63 - 1, -(2**63), 123456789012345]


@pytest.mark.parametrize("fmt", [
    "%d\n", "%i|%u|%x|%X", "%ld %lu %lx", "%lld %llu", "%hd %hu %hhd %hhu %hx %hhx",
    "%5d|%-5d|%05d|%-05d", "%8lx|%08lX|%-8lu", "%zd %jd %td", "100%% %d", "a\tb %d\\n",
])
def test_integer_formats_match_the_generic_path(fmt):
    parsed = PrintfFormat.parse(fmt)
    n = len(parsed.specs)
    fast = compile_fast_printf(parsed, ("int",) * n)
    assert fast is not None
    for v in INTS:
        args = tuple(v * (i + 1) % (2**63) if v >= 0 else v for i in range(n))
        assert fast.one(args) == parsed.format(args)
        # the drain hands over raw u64 words of the record: the same text
        assert fast.one([a & (2**64 - 1) for a in args]) == parsed.format(args)
    # many records from ring words: 2 header words, the captures, 1 pad word each
    rows = [tuple(v * (i + 1) % (2**63) if v >= 0 else v for i in range(n)) for v in INTS]
    words = [w for r in rows for w in (7, 7, *(a & (2**64 - 1) for a in r), 0)]
    assert fast.many(words, 2, len(rows), n + 3) == "".join(parsed.format(r) for r in rows)


def test_strings_match_the_generic_path():
    parsed = PrintfFormat.parse("[%s] %d %s\n")
    fast = compile_fast_printf(parsed, ("str", "int", "str"))
    assert fast is not None
    for args in [("", 0, ""), ("héllo", -5, "x%dy"), ("a\udcffb", 7, "tail")]:
        assert fast.one(args) == parsed.format(args)


@pytest.mark.parametrize(("fmt", "kinds"), [
    ("%5s\n", ("str",)),  # C pads by bytes
    ("%+d", ("int",)), ("% d", ("int",)), ("%#x", ("int",)), ("%.3d", ("int",)),
    ("%c", ("int",)), ("%o", ("int",)), ("%p", ("int",)), ("%s", ("int",)),
    ("%d %d", ("int",)),
])
def test_other_formats_take_the_generic_path(fmt, kinds):
    assert compile_fast_printf(PrintfFormat.parse(fmt), kinds) is None
