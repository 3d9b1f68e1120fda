"""Pure value helpers of compiled handlers: C integer semantics and string operations.

bpftrace computes in 64-bit registers: results wrap, division truncates toward zero, and
BPF defines x / 0 == 0 and x % 0 == x instead of trapping, so do we (runtime.maps has them).
"""

from __future__ import annotations

from runtime.maps import SIGN64, c_div, c_mod, wrap_s64
from runtime.output.valuetext import cstr_text

# One spelling per operation for the generated code; maps.py owns the C/BPF semantics.
wrap64 = wrap_s64
div = c_div
mod = c_mod


def s64(v: int) -> int:
    """A raw register value as a signed 64-bit integer."""
    return v - (1 << 64) if v >= SIGN64 else v


def cast(v: int, size: int, signed: bool) -> int:
    bits = size * 8
    v &= (1 << bits) - 1
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def strncmp(a: str, b: str, n: int) -> int:
    """bpftrace's strncmp: 0 when the first n characters are equal, else 1."""
    return 0 if a[:n] == b[:n] else 1


def str_index(s: str, i: int) -> int:
    return ord(s[i]) if 0 <= i < len(s) else 0


def decode_cstr(raw: bytes) -> str:
    """Target bytes up to the first NUL as text; other bytes survive as surrogate escapes
    so that the output writes back exactly what the target held."""
    return cstr_text(raw)
