"""printf-style format strings as bpftrace accepts them: flags, width, precision, length.

Parsed once into conversions so the checks can match each against its argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# %[flags][width][.precision][length]conversion; %r, %rx and %rh print buffers.
_CONVERSION = re.compile(
    r"%(?P<flags>[-+ #0]*)(?P<width>[0-9]*)(?:\.(?P<prec>[0-9]*))?"
    r"(?P<length>hh|h|ll|l|j|z|t)?(?P<conv>r[xh]?|[diouxXcsp%])"
)

INT_CONVERSIONS = frozenset("diouxXcp")
# Widths and precisions beyond this are refused (a line that long is a mistake).
MAX_FIELD_WIDTH = 1 << 16


@dataclass(frozen=True)
class Conversion:
    text: str  # as written, e.g. '%-10s'
    conv: str  # 'd', 's', 'rx', ...
    start: int  # offset in the format string


class FormatError(ValueError):
    """A '%' that starts no known conversion; the message names it."""


def conversions(fmt: str) -> list[Conversion]:
    """The value-consuming conversions in order ('%%' consumes nothing)."""
    out: list[Conversion] = []
    i = 0
    while True:
        i = fmt.find("%", i)
        if i < 0:
            return out
        match = _CONVERSION.match(fmt, i)
        if match is None:
            bad = fmt[i : i + 2] if i + 1 < len(fmt) else "%"
            raise FormatError(f"unknown conversion '{bad}' in format string")
        for part, name in (("width", "field width"), ("prec", "precision")):
            size = match.group(part)
            if size and int(size) > MAX_FIELD_WIDTH:
                raise FormatError(f"{name} {int(size)} in '{match.group(0)}' is beyond the "
                                  f"limit of {MAX_FIELD_WIDTH}")
        if match.group("conv") != "%":
            out.append(Conversion(match.group(0), match.group("conv"), i))
        i = match.end()
