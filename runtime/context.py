"""What a probe handler sees at a hit, while the hit thread is stopped.

A HitContext is valid only during the handler call: `regs` is the engine's reusable
register struct, overwritten at the next stop, and the context object itself is reused for
the thread's next hit (Session._caller re-points it: no allocation per hit). Work queued with `defer` must capture the
values it needs (as the handler compiler does) rather than keep the context.
Argument, return and register values are raw unsigned 64-bit integers; the caller decides
on width and signedness.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from runtime import procfs
from runtime.errors import UprobeError

if TYPE_CHECKING:
    from runtime.output.values import Stack
    from runtime.stacks import Stacks
    from runtime.threads import Thread
    from runtime.unwind.unwinder import RawFrame

ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


class ContextHost(Protocol):
    """What a context needs of its session (runtime.session.Session)."""

    @property
    def effects(self) -> Any: ...

    def symbolize(self, pid: int, addr: int) -> str: ...

    @property
    def stacks(self) -> Stacks: ...


class HitProbe(Protocol):
    """What a context tells of its probe: a uprobes.Probe, or a sampler's SampleProbe."""

    @property
    def kind(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def placement(self) -> Any: ...

    @property
    def symbol(self) -> str: ...


class _AtSite:
    """Registers read through, with rip moved back from an XOL slot to its site."""

    __slots__ = ("_regs", "rip")

    def __init__(self, regs: Any, rip: int) -> None:
        self._regs = regs
        self.rip = rip

    def __getattr__(self, name: str) -> Any:
        return getattr(self._regs, name)


class HitContext:
    """The contract of docs/architecture.md "Session": registers, arguments, memory,
    identity of the thread, timestamps, stacks, and `defer` for the slow effects."""

    __slots__ = ("session", "thread", "regs", "probe", "_nsecs", "_cpu", "_comm", "deferred")

    def __init__(self, session: ContextHost, thread: Thread, regs: Any, probe: HitProbe) -> None:
        self.session = session
        self.thread = thread
        self.regs = regs
        self.probe = probe
        self._nsecs = 0
        self._cpu: int | None = None
        self._comm: str | None = None
        self.deferred = False

    def reset(self, probe: HitProbe) -> None:
        """Re-point a thread's reused context at the next hit (cheaper than a new one)."""
        self.probe = probe
        self._nsecs = 0
        self._cpu = None
        self._comm = None
        self.deferred = False

    @property
    def nsecs(self) -> int:
        """time.monotonic_ns() at the hit, taken on first use (still inside the stop)."""
        if not self._nsecs:
            self._nsecs = time.monotonic_ns()
        return self._nsecs

    @property
    def pid(self) -> int:
        return self.thread.proc.pid

    @property
    def tid(self) -> int:
        return self.thread.tid

    def arg(self, n: int) -> int:
        """Argument `n` (0-based) by the SysV ABI, valid at a function's entry: six
        registers, then the stack above the return address."""
        if n < 6:
            return getattr(self.regs, ARG_REGS[n])
        return self.thread.proc.mem.read_u64(self.regs.rsp + 8 * (n - 5))

    @property
    def retval(self) -> int:
        return self.regs.rax

    def read(self, addr: int, n: int) -> bytes:
        return self.thread.proc.mem.read(addr, n)

    def read_str(self, addr: int, maxlen: int = 64) -> bytes:
        return self.thread.proc.mem.read_str(addr, maxlen)

    @property
    def cpu(self) -> int:
        """The CPU the thread last ran on (field 39 of /proc/PID/task/TID/stat)."""
        if self._cpu is None:
            self._cpu = procfs.thread_cpu(self.pid, self.tid)
        return self._cpu

    @property
    def comm(self) -> str:
        if self._comm is None:
            self._comm = procfs.comm(self.pid, self.tid)
        return self._comm

    def ustack(self, limit: int = 127) -> list[int]:
        """Return addresses by call-frame information (frame pointers where none covers
        a pc), innermost first. Pending return-probe trampolines are shown as the
        addresses they replaced."""
        return [f.pc for f in self.capture_stack(limit)]

    def capture_stack(self, limit: int = 127) -> list[RawFrame]:
        """The unwound frames with the files they lie in (runtime/stacks.py)."""
        proc = self.thread.proc
        tramp = proc.xol.trampoline
        fix_ra = None
        if tramp and self.thread.returns:
            fix = {r.slot: r.orig for r in self.thread.returns}

            def fix_ra(value: int, slot: int) -> int:
                return fix.get(slot, value) if value == tramp else value

        regs = self.regs
        rip = regs.rip
        if any(a.start <= rip < a.end for a in proc.xol.areas):
            # Caught at the start of an out-of-line copy (a sample right after a hit let
            # the thread go): nothing has run there yet, so it is at the probed site.
            site = next((bp.addr for bp in proc.sites.values() if bp.slot == rip), None)
            if site is not None:
                regs = _AtSite(regs, site)
        return self.session.stacks.capture(proc.pid, proc.maps_generation, regs,
                                           proc.mem, limit, fix_ra)

    def stack_value(self, limit: int, mode: str, demangle: bool = True) -> Stack:
        """A ustack value: captured now, symbolised when printed."""
        return self.session.stacks.value(self.capture_stack(limit), mode, limit, demangle)

    def symbolize(self, addr: int) -> str:
        return self.session.symbolize(self.pid, addr)

    def defer(self, fn: Callable[[], None]) -> None:
        """Run `fn` later on the session's effect thread, in hit order."""
        self.deferred = True
        self.session.effects.submit(fn)

    def set_reg(self, name: str, value: int) -> None:
        """Change a register of the stopped thread (meant for sync probes); the engine
        writes the registers back before the thread continues. The only way to change
        one: a plain write to `regs` is lost where the engine writes back rip alone."""
        if not hasattr(self.regs, name) or name.startswith("_"):
            raise UprobeError(f"no register named {name!r}")
        setattr(self.regs, name, value & MASK64)
        # Tells the engine to write back every register, not just rip.
        self.thread.regs_dirty = True
