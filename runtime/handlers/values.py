"""Pure string helpers of compiled handlers (C integer semantics are runtime.cint's)."""

from __future__ import annotations

import socket

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


AF_INET = 2
AF_INET6 = 10


def ntop(af: int | None, addr: object) -> str:
    """bpftrace's ntop([af,] addr): an integer is an IPv4 address as it lies in memory
    (0x0100007f is 127.0.0.1); bytes (buf) are 4 for IPv4 or 16 for IPv6."""
    if isinstance(addr, int):
        data = (addr & 0xFFFFFFFF).to_bytes(4, "little")
    else:
        data = bytes(getattr(addr, "data", b""))
    if af is None:
        af = AF_INET6 if len(data) == 16 else AF_INET
    if af == AF_INET6 and len(data) >= 16:
        return socket.inet_ntop(socket.AF_INET6, data[:16])
    if af == AF_INET and len(data) >= 4:
        return socket.inet_ntop(socket.AF_INET, data[:4])
    return ""
