"""Per-process and per-thread tracer state, keyed by pid/tid so that several traced
processes (fork following) live side by side."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.memory import ProcessMemory
from runtime.user_bkpt import UserBkpt
from runtime.xol import XolSpace


@dataclass(eq=False)
class ReturnInstance:
    """A pending return: `slot` is the stack address holding the return address (rsp at
    the entry hit), `orig` what the trampoline replaced there. `armed` is False while the
    real address is back in the slot (a C++ exception is being unwound)."""

    orig: int
    slot: int
    probes: list[Any]
    armed: bool = True


@dataclass(eq=False)
class OneShot:
    """A temporary internal breakpoint (e.g. the program entry): restore, then call back."""

    addr: int
    orig: int
    callback: Callable[[Thread], None]


@dataclass(eq=False)
class Thread:
    """`stopped`: in a ptrace-stop we have not resumed; `held`: kept stopped on purpose
    (spawned program waiting before main, XOL injection); `started`: its first stop after
    creation was seen; `pending`: signals to deliver on the next resumes; `unfinished`: a
    trap whose handling raised; `landing`: the return address of the last trampoline hit.
    `regs_dirty`: a handler changed a register other than by the engine's own rip moves
    (HitContext.set_reg), so the hit must write every register back, not rip alone.
    `hit_ctx`: the HitContext reused for this thread's hits (the session's, see
    Session._caller): one thread is in at most one hit at a time."""

    tid: int
    proc: Process
    stopped: bool = False
    held: bool = False
    started: bool = True
    interrupted: bool = False
    group_stopped: bool = False
    pending: list[int] = field(default_factory=list)
    unfinished: bool = False
    landing: int = 0
    returns: list[ReturnInstance] = field(default_factory=list)
    regs_dirty: bool = False
    hit_ctx: Any = None
    # A SIGSTOP queued by system-wide tracing (runtime/listener.py) to be dropped on delivery.
    drop_sigstop: bool = False


class ProcessExtension(Protocol):
    """State another placement strategy keeps in a process (the jump path, the lifeline),
    told of the process's fork and clean-up by the engine; an exec drops it. Optional
    hooks, called where an extension defines them (`extension_hooks`): `started(engine,
    proc, th)` a followed fork child's first stop; `thread_started(proc, th)` a new
    thread's first stop; `vfork_done(proc, tid)` the vforking thread runs again;
    `evict(engine, proc, addr) -> probes` an int3 must go at `addr` inside this
    extension's patch: undo it and return the probes it served there."""

    def forked(self, child: Process, forking_tid: int) -> ProcessExtension | None:
        """The child's copy (the child is stopped before its first instruction)."""
        ...

    def clean(self, proc: Process) -> None:
        """Undo every change to `proc` (every thread of it is stopped)."""
        ...


def extension_hooks(proc: Process, name: str) -> list[Callable[..., Any]]:
    """The extensions' optional hook `name`, bound, for those that define it."""
    found = (getattr(ext, name, None) for ext in list(proc.extensions.values()))
    return [hook for hook in found if hook is not None]


@dataclass(eq=False)
class Process:
    """One address space: memory, XOL areas, installed sites by runtime address, and the
    threads that share it. `ever_sites` maps every address we ever put an int3 at to the
    byte it hid, so a late trap after a removal is recognised and detach can sweep (after
    putting back `tails`, while the first byte still traps)."""

    pid: int
    mem: ProcessMemory
    spawned: bool
    threads: dict[int, Thread] = field(default_factory=dict)
    xol: XolSpace = field(default_factory=XolSpace)
    sites: dict[int, UserBkpt] = field(default_factory=dict)
    oneshots: dict[int, OneShot] = field(default_factory=dict)
    ever_sites: dict[int, int] = field(default_factory=dict)
    # The rest of each site's instruction, where it was replaced by int3s too (site -> bytes).
    tails: dict[int, bytes] = field(default_factory=dict)
    unwinder_hooked: bool = False
    started: bool = True
    vfork: bool = False
    # Taken over by system-wide tracing (runtime/systemwide.py): a root of its own, traced
    # through its execs even when forks are not followed.
    root: bool = False
    # The program's own SIGTRAP sigaction while it has one (runtime/trapguard.py).
    trap_action: bytes | None = None
    # Bumped at exec and at every dlopen/dlclose: cached map snapshots (stacks) go stale.
    maps_generation: int = 0
    extensions: dict[str, ProcessExtension] = field(default_factory=dict)
