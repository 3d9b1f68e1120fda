"""time() and strftime() text: C strftime over local time, plus bpftrace's `%f`.

bpftrace's `%f` extension is the microseconds part, zero-padded to 6 digits; everything
else is the C library's strftime (Python's time.strftime calls it on Linux). time()'s
default format is "%H:%M:%S\\n".
"""

from __future__ import annotations

import time

TIME_DEFAULT_FORMAT = "%H:%M:%S\n"


def _expand_micros(fmt: str, micros: int) -> str:
    """Replace `%f` (not `%%f`) before strftime sees it: C strftime does not know it."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            nxt = fmt[i + 1]
            out.append(f"{micros:06d}" if nxt == "f" else c + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def strftime_text(fmt: str, epoch_ns: int, utc: bool = False) -> str:
    """Format wall-clock nanoseconds since the epoch, in local time unless `utc`."""
    secs, ns = divmod(epoch_ns, 1_000_000_000)
    tm = time.gmtime(secs) if utc else time.localtime(secs)
    return time.strftime(_expand_micros(fmt, ns // 1000), tm)


def time_text(fmt: str = TIME_DEFAULT_FORMAT, epoch_ns: int | None = None) -> str:
    """time(fmt): the current time (or `epoch_ns`) through strftime."""
    if epoch_ns is None:
        epoch_ns = time.time_ns()
    return strftime_text(fmt, epoch_ns)


def boot_ns_to_epoch_ns(boot_ns: int) -> int:
    """A CLOCK_BOOTTIME reading (bpftrace's nsecs) as wall-clock epoch nanoseconds."""
    offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(
        time.CLOCK_BOOTTIME
    )
    return boot_ns + offset


def monotonic_ns_to_epoch_ns(mono_ns: int) -> int:
    """A CLOCK_MONOTONIC reading (e.g. time.monotonic_ns()) as epoch nanoseconds."""
    offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(
        time.CLOCK_MONOTONIC
    )
    return mono_ns + offset
