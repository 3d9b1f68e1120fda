"""hist() and lhist() rows, text and JSON, as bpftrace 0.17 prints them.

Text rows: the bucket label left-aligned in 16 columns, the count right-aligned in 8,
" |", a bar of '@' of length count/max*52 computed in C `float` (we round through
float32 to get the same truncation), padded to 52, then "|". Only buckets from the first
to the last non-empty one are shown. Labels use K/M/G/T for powers of 2^10 (0.17 stops at
T: [1024T, 2048T) rather than later versions' [1P, 2P)). lhist labels abbreviate exact
multiples of 1024 (K) and 1048576 (M), as 0.17 does regardless of the step.

hist(x, bits) with bits > 0 exists only in later bpftrace (2^bits buckets per power of
two): those labels follow its hist_index_label, suffixes K M G T P E.
"""

from __future__ import annotations

import struct

BAR_WIDTH = 52


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def bar_length(count: int, max_count: int) -> int:
    """int(count / (float)max * 52) with C float (binary32) arithmetic."""
    if max_count <= 0:
        return 0
    q = _f32(_f32(float(count)) / _f32(float(max_count)))
    return int(_f32(q * 52.0))


def row(label: str, shown: int, count: int, max_count: int) -> str:
    bar = "@" * bar_length(count, max_count)
    return f"{label:<16}{shown:>8} |{bar:<{BAR_WIDTH}}|\n"


def hist_power_label(power: int) -> str:
    """2^power with bpftrace 0.17's suffixes: 1K, 2M, 4G, 1024T..."""
    for threshold, suffix in ((40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if power >= threshold:
            return f"{1 << (power - threshold)}{suffix}"
    return str(1 << power)


def hist_start_label(index: int, bits: int) -> str:
    """The lowest value of bucket `index + 1` of a hist(x, bits), with its suffix: the
    interval `index & (2^bits - 1)` of power `(index >> bits) - 1`."""
    n = 1 << bits
    interval = index & (n - 1)
    power = (index >> bits) - 1
    decade = power // 10
    suffix = ("", "K", "M", "G", "T", "P", "E")[decade]
    return f"{(1 << (power - 10 * decade)) * (n + interval)}{suffix}"


def hist_label(index: int, bits: int = 0) -> str:
    if index == 0:
        return "(..., 0)"
    if bits == 0:
        if index == 1:
            return "[0]"
        if index == 2:
            return "[1]"
        return f"[{hist_power_label(index - 2)}, {hist_power_label(index - 1)})"
    if index <= 2 << bits:
        return f"[{index - 1}]"
    return f"[{hist_start_label(index - 1, bits)}, {hist_start_label(index, bits)})"


def hist_bounds(index: int, bits: int = 0) -> tuple[int, int]:
    """(min, max) of the values in bucket `index` > 0 of a hist(x, bits)."""
    n = 1 << bits
    if index <= 2 * n:
        return index - 1, index - 1

    def start(i: int) -> int:
        return (1 << ((i >> bits) - 1)) * (n + (i & (n - 1)))

    return start(index - 1), start(index) - 1


def nonempty_range(buckets: list[int]) -> range | None:
    """First to last non-empty bucket, or None when all are empty."""
    used = [i for i, c in enumerate(buckets) if c > 0]
    if not used:
        return None
    return range(used[0], used[-1] + 1)


def hist_text(buckets: list[int], div: int = 1, bits: int = 0) -> str:
    """Rows of a log2 histogram; counts shown divided by `div` (bars use the raw counts)."""
    span = nonempty_range(buckets)
    if span is None:
        return ""
    top = max(buckets)
    return "".join(row(hist_label(i, bits), buckets[i] // div, buckets[i], top)
                   for i in span)


def lhist_number_label(n: int) -> str:
    if n != 0 and n % (1 << 20) == 0:
        return f"{n // (1 << 20)}M"
    if n != 0 and n % 1024 == 0:
        return f"{n // 1024}K"
    return str(n)


def lhist_label(index: int, lo: int, hi: int, step: int) -> str:
    n = (hi - lo) // step
    if index == 0:
        return f"(..., {lhist_number_label(lo)})"
    if index == n + 1:
        return f"[{lhist_number_label(hi)}, ...)"
    a = (index - 1) * step + lo
    return f"[{lhist_number_label(a)}, {lhist_number_label(a + step)})"


def lhist_text(buckets: list[int], lo: int, hi: int, step: int) -> str:
    """Rows of a linear histogram (bpftrace does not apply print()'s div to lhist)."""
    span = nonempty_range(buckets)
    if span is None:
        return ""
    top = max(buckets)
    return "".join(
        row(lhist_label(i, lo, hi, step), buckets[i], buckets[i], top) for i in span
    )


def hist_json(buckets: list[int], div: int = 1, bits: int = 0) -> str:
    """`[{"min": 2, "max": 3, "count": 1}, ...]`; the negative bucket has only "max"."""
    span = nonempty_range(buckets)
    if span is None:
        return "[]"
    items = []
    for i in span:
        if i == 0:
            bounds = '"max": -1, '
        else:
            lo, hi = hist_bounds(i, bits)
            bounds = f'"min": {lo}, "max": {hi}, '
        items.append("{" + bounds + f'"count": {buckets[i] // div}' + "}")
    return "[" + ", ".join(items) + "]"


def lhist_json(buckets: list[int], lo: int, hi: int, step: int) -> str:
    span = nonempty_range(buckets)
    if span is None:
        return "[]"
    n = (hi - lo) // step
    items = []
    for i in span:
        if i == 0:
            bounds = f'"max": {lo - 1}, '
        elif i == n + 1:
            bounds = f'"min": {hi}, '
        else:
            a = (i - 1) * step + lo
            bounds = f'"min": {a}, "max": {a + step - 1}, '
        items.append("{" + bounds + f'"count": {buckets[i]}' + "}")
    return "[" + ", ".join(items) + "]"
