"""The text of one value, as bpftrace's Output::value_to_str writes it.

Shared by text output, JSON output (which quotes the string-like ones) and printf's %s.
Integers are Python ints already wrapped to 64 bits by the maps and handlers; strings may
be str or the raw bytes read from the target (cut at the first NUL, undecodable bytes kept
as surrogate escapes so that the output sink can write the original bytes back).
"""

from __future__ import annotations

from runtime.aggregations import AvgState, CountState, MaxState, MinState, SumState
from runtime.output.errors import OutputError
from runtime.output.stack import stack_text, uaddr_text, usym_text
from runtime.output.timefmt import strftime_text
from runtime.output.values import Buf, CArray, Pointer, Record, Stack, Timestamp, Usym


def cstr_text(raw: bytes) -> str:
    """Target bytes as a C string: up to the first NUL, bytes kept exactly."""
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("utf-8", "surrogateescape")


def text_bytes(text: str) -> bytes:
    """The bytes a text stands for (inverse of cstr_text's decoding)."""
    return text.encode("utf-8", "surrogateescape")


def hex_format_buffer(data: bytes, keep_ascii: bool = True, escape_hex: bool = True) -> str:
    """buf() text: %r keeps printable ASCII and writes other bytes as \\xNN; %rx escapes
    every byte; %rh writes space-separated hex pairs."""
    if not keep_ascii and not escape_hex:
        return " ".join(f"{b:02x}" for b in data)
    out: list[str] = []
    for b in data:
        if keep_ascii and 32 <= b <= 126:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def value_text(value: object) -> str:
    """One value as bpftrace prints it in maps, print() and %s."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Pointer):
        return uaddr_text(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return cstr_text(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(value_text(v) for v in value) + ")"
    if isinstance(value, Record):
        return "{ " + ", ".join(f".{n} = {value_text(v)}" for n, v in value.fields) + " }"
    if isinstance(value, CArray):
        return "[" + ",".join(value_text(v) for v in value.items) + "]"
    if isinstance(value, Stack):
        return stack_text(value)
    if isinstance(value, Usym):
        return usym_text(value)
    if isinstance(value, Buf):
        return hex_format_buffer(value.data)
    if isinstance(value, Timestamp):
        return strftime_text(value.fmt, value.epoch_ns)
    if isinstance(value, CountState | SumState | MinState | MaxState | AvgState):
        return str(value.read())
    raise OutputError(f"cannot print a value of type {type(value).__name__}")


def key_text(key: tuple[object, ...]) -> str:
    """`[a, b]` after the map name; nothing for a scalar map."""
    if not key:
        return ""
    return "[" + ", ".join(key_item_text(k) for k in key) + "]"


def key_item_text(value: object) -> str:
    """One key element: struct and array keys print compactly, `{.m=2,.n=3}`, as bpftrace
    writes them inside `@[...]` (a struct *value* keeps its spaces)."""
    if isinstance(value, Record):
        return "{" + ",".join(f".{n}={key_item_text(v)}" for n, v in value.fields) + "}"
    if isinstance(value, CArray):
        return "[" + ",".join(key_item_text(v) for v in value.items) + "]"
    return value_text(value)


def is_quoted(value: object) -> bool:
    """Values that JSON output writes as strings (bpftrace's is_quoted_type)."""
    return isinstance(value, str | bytes | Stack | Usym | Buf | Timestamp)
