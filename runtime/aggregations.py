"""Aggregation states and histogram bucket arithmetic, as bpftrace keeps them.

One state object per map element: `add(value)` at each hit, `read()` when the element is
used as a value (count, sum, min, max, avg, stats) and the buckets for printing (hist,
lhist). The map store (runtime.maps) owns keys and kinds; this module only the values.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import MappingProxyType

from runtime.cint import c_div, wrap_s64, wrap_u64
from runtime.errors import UprobeError

HIST_BUCKETS = 65  # (..., 0), [0], [1], then one per power of two up to 2^63
LHIST_MAX_BUCKETS = 1000  # bpftrace's limit on (max - min) / step


class MapError(UprobeError):
    """A map used against its kind (hist read as a number, lhist with new bounds, ...)."""


def hist_index(value: int, bits: int = 0) -> int:
    """bpftrace's log2 bucket: 0 negative, 1 zero, 2 one, n+2 for [2^n, 2^(n+1)).

    With `bits` = k > 0 (hist(x, k) of bpftrace after 0.17) every power of two is split
    into 2^k equal buckets: values below 2^(k+1) get one bucket each (index value + 1),
    and [2^p * (2^k + j), 2^p * (2^k + j + 1)) gets index ((p + 1) << k) + j + 1."""
    value = wrap_s64(value)
    if value < 0:
        return 0
    n = 1 << bits
    if value < n:
        return value + 1
    p = value.bit_length() - 1 - bits
    return ((p + 1) << bits) + (value >> p) - n + 1


def hist_bucket_count(bits: int = 0) -> int:
    """Buckets of a hist(x, bits) up to INT64_MAX (65 for plain log2)."""
    return hist_index((1 << 63) - 1, bits) + 1


def lhist_bucket_count(lo: int, hi: int, step: int) -> int:
    """Buckets between min and max, excluding the under/overflow buckets."""
    return (hi - lo) // step


def lhist_index(value: int, lo: int, hi: int, step: int) -> int:
    """0 below min, 1..n for [min + (i-1)*step, min + i*step), n+1 at or above max."""
    n = lhist_bucket_count(lo, hi, step)
    value = wrap_s64(value)
    if value < lo:
        return 0
    if value >= hi:
        return n + 1
    return min(c_div(value - lo, step) + 1, n + 1)


def check_lhist_args(lo: int, hi: int, step: int) -> None:
    if step < 1:
        raise MapError(f"lhist(): step must be at least 1 (got {step})")
    if hi <= lo:
        raise MapError(f"lhist(): max ({hi}) must be greater than min ({lo})")
    if lhist_bucket_count(lo, hi, step) > LHIST_MAX_BUCKETS:
        raise MapError(f"lhist(): (max - min) / step must be <= {LHIST_MAX_BUCKETS}")


# ----------------------------------------------------------------------------- states


@dataclass
class CountState:
    """count(): uint64, as bpftrace prints it."""

    count: int = 0

    def add(self, value: int = 0) -> None:
        self.count = wrap_u64(self.count + 1)

    def read(self) -> int:
        return self.count


@dataclass
class SumState:
    total: int = 0

    def add(self, value: int) -> None:
        self.total = wrap_s64(self.total + value)

    def read(self) -> int:
        return self.total


@dataclass
class MinState:
    value: int = 0
    seen: bool = False

    def add(self, value: int) -> None:
        value = wrap_s64(value)
        if not self.seen or value < self.value:
            self.value, self.seen = value, True

    def read(self) -> int:
        return self.value


@dataclass
class MaxState:
    value: int = 0
    seen: bool = False

    def add(self, value: int) -> None:
        value = wrap_s64(value)
        if not self.seen or value > self.value:
            self.value, self.seen = value, True

    def read(self) -> int:
        return self.value


@dataclass
class AvgState:
    """avg(): count and total; the printed value is the C integer quotient."""

    count: int = 0
    total: int = 0

    def add(self, value: int) -> None:
        self.count = wrap_u64(self.count + 1)
        self.total = wrap_s64(self.total + value)

    @property
    def average(self) -> int:
        return c_div(self.total, self.count)

    def read(self) -> int:
        return self.average


@dataclass
class StatsState(AvgState):
    """stats(): count, average, total."""


@dataclass
class HistState:
    bits: int = 0  # hist(x, bits): log2 sub-buckets per power of two
    buckets: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.buckets:
            self.buckets = [0] * hist_bucket_count(self.bits)

    def add(self, value: int) -> None:
        i = hist_index(value, self.bits)
        self.buckets[i] = wrap_u64(self.buckets[i] + 1)

    @property
    def total(self) -> int:
        return sum(self.buckets)

    def read(self) -> int:
        raise MapError("a hist() map element cannot be used as a value")


@dataclass
class LhistState:
    min: int
    max: int
    step: int
    buckets: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.buckets:
            self.buckets = [0] * (lhist_bucket_count(self.min, self.max, self.step) + 2)

    def add(self, value: int) -> None:
        i = lhist_index(value, self.min, self.max, self.step)
        self.buckets[i] = wrap_u64(self.buckets[i] + 1)

    @property
    def total(self) -> int:
        return sum(self.buckets)

    def read(self) -> int:
        raise MapError("an lhist() map element cannot be used as a value")


AggState = (
    CountState | SumState | MinState | MaxState | AvgState | StatsState | HistState | LhistState
)

_STATE_OF_KIND: MappingProxyType[str, type] = MappingProxyType({
    "count": CountState, "sum": SumState, "min": MinState, "max": MaxState,
    "avg": AvgState, "stats": StatsState, "hist": HistState,
})


def copy_value(value: object) -> object:
    """Aggregation states are mutable; plain values (ints, strings, tuples, frozen
    dataclasses) are not and are shared."""
    if isinstance(value, HistState | LhistState):
        dup = copy.copy(value)
        dup.buckets = list(value.buckets)
        return dup
    if isinstance(value, CountState | SumState | MinState | MaxState | AvgState):
        return copy.copy(value)
    return value


def new_state(kind: str, lhist_args: tuple[int, int, int] | None = None,
              hist_bits: int = 0) -> AggState:
    if kind == "hist":
        if not 0 <= hist_bits <= 5:
            raise MapError(f"hist(): bits must be between 0 and 5 (got {hist_bits})")
        return HistState(hist_bits)
    if kind == "lhist":
        if lhist_args is None:
            raise MapError("lhist() needs min, max and step")
        check_lhist_args(*lhist_args)
        return LhistState(*lhist_args)
    return _STATE_OF_KIND[kind]()


