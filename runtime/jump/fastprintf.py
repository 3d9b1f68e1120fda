"""A printf whose arguments are all captured values, formatted without the generic path.

The drain must keep up with a target that prints on every call (the goal is a million
events a second into a file). runtime.output.printf formats any value with C's every
flag; for the common formats (d i u x X with `-`/`0` and a width, plain %s) Python's own
`%` operator prints the same bytes once each argument is cut to the conversion's length,
so those formats compile to one expression here. Anything else returns None and the
event runs through the trap path's handler code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.cint import MASK64
from runtime.output.printf import Spec

_LENGTH_BITS = {"": 32, "hh": 8, "h": 16, "l": 64, "ll": 64, "j": 64, "z": 64, "t": 64}


@dataclass(frozen=True)
class FastPrintf:
    """`one(caps)` formats one record's captures; `many(words, first, k, rw)` formats k
    records of integer captures straight from a list of ring words (column by column:
    each argument is cut to its conversion's width with one comprehension, then one `%`
    per line), which is what lets one Python thread drain a million lines a second."""

    one: Callable[[Any], str]
    fmt: str  # the Python %-format
    cuts: tuple[tuple[int, int] | None, ...]  # (half, mask) signed, (0, mask) unsigned

    def many(self, words: list[int], first: int, k: int, rw: int) -> str:
        if not self.cuts:
            return (self.fmt % ()) * k  # no arguments: zip() of no columns is empty
        cols: list[list[Any]] = []
        end = k * rw
        for i, cut in enumerate(self.cuts):
            col = words[first + i: end: rw]
            if cut is not None:
                half, mask = cut
                if half:
                    col = [((v + half) & mask) - half for v in col]
                elif mask != MASK64:
                    col = [v & mask for v in col]
            cols.append(col)
        fmt = self.fmt
        return "".join([fmt % t for t in zip(*cols, strict=True)])


def _arg_source(spec: Spec, cap: str, kind: str
                ) -> tuple[str, str, tuple[int, int] | None] | None:
    """(python conversion, argument expression, cut) matching C's output for this spec."""
    if spec.precision is not None or set(spec.flags) - {"-", "0"}:
        return None
    if spec.conv == "s":
        if kind != "str" or spec.flags or spec.width:
            return None  # C pads by bytes, Python by characters
        return "%s", cap, None
    if kind != "int" or spec.conv not in "diuxX" or spec.length not in _LENGTH_BITS:
        return None
    bits = _LENGTH_BITS[spec.length]
    mask = (1 << bits) - 1
    width = str(spec.width) if spec.width else ""
    py = "%" + spec.flags + width + ("d" if spec.conv in "diu" else spec.conv)
    if spec.conv in "di":
        half = 1 << (bits - 1)
        return py, f"((({cap}) + {half}) & {mask}) - {half}", (half, mask)
    return py, f"({cap}) & {mask}", (0, mask)


def compile_fast_printf(fmt: Any, kinds: tuple[str, ...]) -> FastPrintf | None:
    """fmt: a parsed PrintfFormat whose arguments are the captures in order (kinds
    'int'/'str'); None when the format needs the generic path. Integers may come signed
    or as raw u64 words: each is cut to its conversion first."""
    parts = getattr(fmt, "parts", None)
    if parts is None:
        return None
    specs = [p for p in parts if isinstance(p, Spec)]
    if len(specs) != len(kinds):
        return None
    py: list[str] = []
    args: list[str] = []
    cuts: list[tuple[int, int] | None] = []
    i = 0
    for part in parts:
        if isinstance(part, str):
            py.append(part.replace("%", "%%"))
            continue
        got = _arg_source(part, f"c[{i}]", kinds[i])
        if got is None:
            return None
        py.append(got[0])
        args.append(got[1])
        cuts.append(got[2])
        i += 1
    text = "".join(py)
    src = f"lambda c: {text!r} % ({''.join(a + ', ' for a in args)})"
    fn: Callable[[Any], str] = eval(src, {})  # noqa: S307 - built from the spec table
    return FastPrintf(fn, text, tuple(cuts))
