"""Contexts for handlers that run outside a probe hit (BEGIN, END, interval) and the USDT
view of a hit context.

A BEGIN/END/interval handler has no stopped thread: reads of target memory are refused,
`pid`/`comm` name the tracer itself as in bpftrace, and `defer` goes wherever the caller
says (run now for BEGIN/END, the session's effect queue for timers).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.errors import MemoryReadError


class Hit(Protocol):
    """What compiled handlers and their support read of the moment they run for: a probe
    hit (runtime.context.HitContext, or UsdtContext around one), a sample, or a BEGIN, END
    or interval firing (ManualContext)."""

    @property
    def pid(self) -> int: ...

    @property
    def tid(self) -> int: ...

    @property
    def regs(self) -> Any: ...

    @property
    def probe(self) -> Any: ...

    @property
    def nsecs(self) -> int: ...

    @property
    def cpu(self) -> int: ...

    @property
    def comm(self) -> str: ...

    @property
    def retval(self) -> int: ...

    def arg(self, n: int) -> int: ...

    def read(self, addr: int, n: int) -> bytes: ...

    def read_str(self, addr: int, maxlen: int) -> bytes: ...

    def ustack(self, limit: int) -> list[int]: ...

    def symbolize(self, addr: int) -> str | None: ...

    def defer(self, fn: Callable[[], None]) -> None: ...


# A compiled clause: called once per hit (or firing) with its context.
Handler = Callable[[Hit], None]


@dataclass(frozen=True)
class ProbeInfo:
    """What `probe` and `func` read for a non-hit handler."""

    label: str
    kind: str
    symbol: str = ""


@dataclass
class ManualContext:
    """The HitContext shape for handlers that are not a probe hit."""

    probe: ProbeInfo
    defer: Callable[[Callable[[], None]], None]
    pid: int = field(default_factory=os.getpid)
    tid: int = field(default_factory=os.getpid)
    comm: str = "uprobe"
    cpu: int = 0
    retval: int = 0
    nsecs: int = field(default_factory=time.monotonic_ns)

    def arg(self, n: int) -> int:
        return 0

    @property
    def regs(self) -> Any:
        raise MemoryReadError("no registers outside a probe hit", 0)

    def read(self, addr: int, n: int) -> bytes:
        raise MemoryReadError(f"no target memory to read at 0x{addr:x} here", addr)

    def read_str(self, addr: int, maxlen: int) -> bytes:
        raise MemoryReadError(f"no target memory to read at 0x{addr:x} here", addr)

    def ustack(self, limit: int) -> list[int]:
        return []

    def symbolize(self, addr: int) -> None:
        return None


class UsdtContext:
    """A hit context whose arg(n) are the USDT note's argument specs, not the ABI registers.

    Why a wrapper: the session hands every handler the same HitContext; only the executor
    knows that this handler belongs to a USDT site and which note describes it. `bias` is
    the file's load bias in the hit process (for `symbol(%rip)` operands).
    """

    __slots__ = ("_ctx", "_note", "_elf", "_bias")

    def __init__(self, ctx: Any, note: Any, elf: Any, bias: int) -> None:
        self._ctx = ctx
        self._note = note
        self._elf = elf
        self._bias = bias

    def arg(self, n: int) -> int:
        ctx = self._ctx
        return self._note.arg(n).evaluate(ctx.regs, ctx.read, self._elf, self._bias)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)
