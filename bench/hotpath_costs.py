"""The pieces of one hit, timed one by one: each ptrace request through the engine's own
bindings (runtime.ptrace_ops) beside the same request from C (ptrace_cost.c), and the
pure-Python steps the engine takes per hit. The difference per request is what Python and
ctypes add; the sum tells how far uprobe can get from the raw C tracer without a C core.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from programs import BENCH_DIR

sys.path.insert(0, str(BENCH_DIR.parent))

from runtime import ptrace_ops as pt  # noqa: E402
from runtime.context import HitContext  # noqa: E402

PTRACE_POKEUSER = 6
RIP_OFFSET = pt.new_regs().__class__.rip.offset


def _raw_ptrace(keep_gil: bool) -> Callable[..., int]:
    """libc ptrace called as the engine's inlined hot path does (no argtypes). Through
    PyDLL the call keeps the GIL; CDLL drops and retakes it around every call: uncontended
    that costs the difference shown, but while the effect thread runs Python the retake
    can wait for its switch interval."""
    fn = (ctypes.PyDLL if keep_gil else ctypes.CDLL)(None).ptrace
    fn.restype = ctypes.c_long
    return fn


@dataclass(frozen=True)
class Cost:
    """One step: nanoseconds per call from Python, and from C where there is a C twin."""

    step: str
    python_ns: float
    c_ns: float | None


def _per_call_ns(fn: Callable[[], object], n: int, repeat: int = 5) -> float:
    """Best-of-`repeat` mean: the floor of the step, with scheduler noise removed."""
    best = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best.append((time.perf_counter_ns() - t) / n)
    return min(best)


def _stopped_child() -> int:
    """A forked child stopped under ptrace (EXITKILL: it dies with us)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            pt.traceme()
            os.kill(os.getpid(), signal.SIGSTOP)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    pt.ptrace(pt.PTRACE_SETOPTIONS, pid, 0, pt.O_EXITKILL)
    return pid


def c_costs(binary: Path, n: int) -> dict[str, float]:
    out = subprocess.run([str(binary), str(n)], capture_output=True, text=True, check=True)
    return {k: float(v) for k, v in (line.split() for line in out.stdout.splitlines())}


class _FakeThread:
    """What HitContext reads at construction: nothing but the object itself."""

    tid = 0


def python_costs(n: int) -> dict[str, float]:
    pid = _stopped_child()
    try:
        regs = pt.new_regs()
        addr = pt.regs_address(regs)
        waitpid = os.waitpid
        flags = os.WNOHANG | pt.WALL
        thread = _FakeThread()
        pt.getregs(pid, addr)
        rip = regs.rip
        raw = _raw_ptrace(keep_gil=False)
        keep_gil = _raw_ptrace(keep_gil=True)
        found = {
            "getregs": _per_call_ns(lambda: raw(pt.PTRACE_GETREGS, pid, 0, addr), n),
            "setregs": _per_call_ns(lambda: raw(pt.PTRACE_SETREGS, pid, 0, addr), n),
            "waitpid_nohang": _per_call_ns(lambda: waitpid(pid, flags), n),
            "peekuser_rip": _per_call_ns(lambda: raw(pt.PTRACE_PEEKUSER, pid, RIP_OFFSET, 0), n),
            "pokeuser_rip": _per_call_ns(lambda: raw(PTRACE_POKEUSER, pid, RIP_OFFSET, rip), n),
            "getregs, GIL kept (PyDLL)": _per_call_ns(
                lambda: keep_gil(pt.PTRACE_GETREGS, pid, 0, addr), n),
            "getregs via ptrace_ops.getregs()": _per_call_ns(lambda: pt.getregs(pid, addr), n),
            "HitContext()": _per_call_ns(lambda: HitContext(None, thread, regs, None), n),  # type: ignore[arg-type]
            "regs.rip read + write": _per_call_ns(lambda: setattr(regs, "rip", regs.rip), n),
            "time.monotonic_ns()": _per_call_ns(time.monotonic_ns, n),
        }
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return found


def measure(c_binary: Path, n: int) -> list[Cost]:
    c = c_costs(c_binary, n)
    py = python_costs(n)
    return [Cost(step, ns, c.get(step)) for step, ns in py.items()]

