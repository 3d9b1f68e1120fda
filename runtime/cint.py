"""C integer semantics as bpftrace computes them: 64-bit registers, BPF's rules.

Results wrap to 64 bits; division truncates toward zero; BPF defines x / 0 == 0 and
x % 0 == x instead of trapping; shift counts are masked to 0..63 (what BPF's 64-bit
shifts and x86's shl/sar do), so a negative or too-large count never raises. `>>` on a
signed value is arithmetic, on an unsigned one logical. The compiled handlers, the map
store and the output use these and no other spellings.
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1
SIGN64 = 1 << 63


def wrap_s64(v: int) -> int:
    """Two's-complement signed 64-bit wraparound, as a BPF register."""
    return ((v + SIGN64) & MASK64) - SIGN64


def wrap_u64(v: int) -> int:
    return v & MASK64


def s64(v: int) -> int:
    """A raw 64-bit register value as a signed integer."""
    return v - (1 << 64) if v >= SIGN64 else v


def c_div(a: int, b: int) -> int:
    """C division (truncates toward zero); BPF defines x / 0 as 0."""
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def c_mod(a: int, b: int) -> int:
    """C remainder (sign of the dividend); BPF defines x % 0 as x."""
    if b == 0:
        return a
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def shl(a: int, b: int) -> int:
    return wrap_s64(a << (b & 63))


def shr(a: int, b: int) -> int:
    """Arithmetic shift right of a signed value."""
    return wrap_s64(a) >> (b & 63)


def lshr(a: int, b: int) -> int:
    """Logical shift right of an unsigned value (its 64-bit pattern)."""
    return (a & MASK64) >> (b & 63)


def cast(v: int, size: int, signed: bool) -> int:
    """(intN_t)v / (uintN_t)v: keep the low `size` bytes, sign-extend when signed."""
    bits = size * 8
    v &= (1 << bits) - 1
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v
