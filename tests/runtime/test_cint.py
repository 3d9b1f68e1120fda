"""C integer semantics (runtime.cint): what bpftrace's 64-bit BPF arithmetic gives."""

from __future__ import annotations

import pytest

from runtime.cint import c_div, c_mod, cast, lshr, s64, shl, shr, wrap_s64, wrap_u64

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


def test_wraparound():
    assert wrap_s64(I64_MAX + 1) == I64_MIN
    assert wrap_s64(I64_MIN - 1) == I64_MAX
    assert wrap_u64(-1) == 2**64 - 1
    assert s64(2**64 - 1) == -1
    assert s64(5) == 5


def test_division_truncates_and_by_zero_is_defined():
    assert c_div(-7, 2) == -3
    assert c_div(7, -2) == -3
    assert c_mod(-7, 2) == -1
    assert c_mod(7, -2) == 1
    assert c_div(5, 0) == 0
    assert c_mod(5, 0) == 5


@pytest.mark.parametrize(("a", "b", "left", "right"), [
    (1, 3, 8, 0),
    (-8, 1, -16, -4),          # >> of a signed value is arithmetic
    (1, 64, 1, 1),             # the count is masked to 0..63: 64 is 0
    (1, 65, 2, 0),
    (16, -1, 0, 0),            # -1 & 63 == 63
    (1, -63, 2, 0),            # -63 & 63 == 1
    (3, 1 << 40, 3, 3),        # a huge count costs nothing and is masked too
    (1, 63, I64_MIN, 0),       # into the sign bit: wraps
])
def test_shifts_mask_their_count(a, b, left, right):
    assert shl(a, b) == left
    assert shr(a, b) == right


def test_logical_shift_of_unsigned_values():
    assert lshr(-8, 1) == (2**64 - 8) >> 1
    assert lshr(2**64 - 1, 63) == 1
    assert lshr(8, -1) == 0


def test_cast_keeps_the_low_bytes():
    assert cast(0x1FF, 1, False) == 0xFF
    assert cast(0xFF, 1, True) == -1
    assert cast(-1, 4, False) == 0xFFFFFFFF
    assert cast(0x80000000, 4, True) == -(2**31)
