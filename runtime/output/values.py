"""Runtime values that print specially: user stacks, symbols, buffers, timestamps.

Handlers build these at the hit (capture) and hand them to maps and printing; they are
frozen so that they can be map keys (`@[ustack] = count()`), and each names its `KIND` so
that a map learns its value kind from the first value stored in it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass


class Pointer(int):
    """A pointer-typed integer (uaddr(), pointer casts): it computes as an int (arithmetic
    yields plain ints) and prints as bpftrace prints pointer types, "0x" + hex."""

    __slots__ = ()


@dataclass(frozen=True)
class Frame:
    """One resolved frame: symbol None when the address is in no known symbol."""

    symbol: str | None
    offset: int
    address: int
    module: str | None = None


class Stack:
    """ustack / ustack(N) / ustack(perf, N): innermost frame first.

    mode: 'bpftrace' (default), 'perf' (address, symbol and module) or 'raw' (addresses).
    A stack is either given its frames, or captured: a hashable `key` (addresses and the
    files they lay in) and a `resolve` callable that symbolises it when first printed, so
    that the hit only records where the frames were (see runtime/stacks.py).
    """

    KIND = "stack"
    __slots__ = ("_frames", "mode", "_key", "_resolve")

    def __init__(self, frames: tuple[Frame, ...] = (), mode: str = "bpftrace", *,
                 key: Hashable = None, resolve: Callable[[], tuple[Frame, ...]] | None = None
                 ) -> None:
        self._frames: tuple[Frame, ...] | None = tuple(frames) if resolve is None else None
        self.mode = mode
        self._key = key if resolve is not None else self._frames
        self._resolve = resolve

    @property
    def frames(self) -> tuple[Frame, ...]:
        if self._frames is None:
            assert self._resolve is not None
            self._frames = tuple(self._resolve())
            self._resolve = None
        return self._frames

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stack):
            return NotImplemented
        return self.mode == other.mode and self._key == other._key

    def __hash__(self) -> int:
        return hash((self._key, self.mode))

    def __repr__(self) -> str:
        return f"Stack({self.frames!r}, {self.mode!r})"


@dataclass(frozen=True)
class Usym:
    """usym(addr): prints the symbol name alone, or the address as 0x... when unknown."""

    KIND = "usym"

    address: int
    symbol: str | None = None
    offset: int = 0
    module: str | None = None


@dataclass(frozen=True)
class Buf:
    """buf(ptr, n): raw bytes printed with non-printable bytes as \\xNN (`%r`)."""

    KIND = "buf"

    data: bytes


@dataclass(frozen=True)
class Timestamp:
    """strftime(fmt, ns): formatted when printed; `epoch_ns` is wall-clock time (see
    timefmt.boot_ns_to_epoch_ns for converting a monotonic/boot `nsecs`)."""

    KIND = "timestamp"

    fmt: str
    epoch_ns: int


@dataclass(frozen=True)
class Record:
    """A struct/union value read from the target: prints `{ .a = 1, .b = x }`."""

    KIND = "record"

    fields: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class CArray:
    """A C array value read from the target: prints `[1,2,3]` (no spaces, as bpftrace)."""

    KIND = "array"

    items: tuple[object, ...]
