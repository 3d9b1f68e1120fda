"""How a probe names a source line (`"file.c:42"`), apart from the DWARF that resolves it:
every probe is asked whether it is one, and most are not, so the question must not import
the DWARF reader."""

from __future__ import annotations

import re

LINE_SPEC = re.compile(r"(?P<file>[^:*?\[\]]+\.[A-Za-z0-9+]+):(?P<line>[0-9]+)")


def parse_line_spec(text: str) -> tuple[str, int] | None:
    m = LINE_SPEC.fullmatch(text)
    return (m.group("file"), int(m.group("line"))) if m else None
