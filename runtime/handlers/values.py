"""Pure string helpers of compiled handlers (C integer semantics are runtime.cint's)."""

from __future__ import annotations

from runtime.output.valuetext import cstr_text


def strncmp(a: str, b: str, n: int) -> int:
    """bpftrace's strncmp: 0 when the first n characters are equal, else 1."""
    return 0 if a[:n] == b[:n] else 1


def str_index(s: str, i: int) -> int:
    return ord(s[i]) if 0 <= i < len(s) else 0


def decode_cstr(raw: bytes) -> str:
    """Target bytes up to the first NUL as text; other bytes survive as surrogate escapes
    so that the output writes back exactly what the target held."""
    return cstr_text(raw)
