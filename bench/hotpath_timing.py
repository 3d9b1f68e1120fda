"""Deterministic accounting of one hit: the uprobe CLI run with its ptrace calls, waitpid
and handler calls wrapped in timers, so every microsecond of the tracer's cycle is
attributed (sampling profilers alias badly against a 20 us cycle on a loaded 2-CPU box).

The wrappers go in at the lowest level, before the engine is imported: every ctypes
`ptrace` function object that runtime.ptrace_ops holds (however the engine reaches it)
and os.waitpid, so the accounting survives the engine being reorganised.

    python3 bench/hotpath_timing.py [--keep-gil] OUT.json UPROBE-ARGS...

--keep-gil is an experiment on the engine without editing it: runtime.ptrace_ops's ctypes
ptrace objects are swapped for PyDLL ones, which keep the GIL during the call.

Runs `uplang.cli.main(UPROBE-ARGS)` in this process with the wrappers installed, then
writes {step: [calls, total_ns]} and the wrapper's own cost per call to OUT.json. The
tracer is one serial loop, so the hit period minus the timed steps is the engine's own
Python (dispatch, site lookup, resume logic).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime import ptrace_ops  # noqa: E402

REQUESTS = ((3, "PEEKUSER"), (6, "POKEUSER"), (7, "CONT"), (12, "GETREGS"), (13, "SETREGS"),
            (0x4202, "GETSIGINFO"))


class Timers:
    """Per-step call counts and nanoseconds."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.ns: dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.calls[name] = 0
        self.ns[name] = 0
        clock = time.perf_counter_ns
        calls, ns = self.calls, self.ns

        def timed(*args: Any) -> Any:
            t = clock()
            try:
                return fn(*args)
            finally:
                ns[name] += clock() - t
                calls[name] += 1

        return timed


def wrapper_cost_ns(n: int = 200_000) -> float:
    """What one wrapped ptrace call adds over a direct one (the costliest wrapper)."""
    bare = lambda request, *args: None  # noqa: E731
    timed = _by_request(Timers(), bare)
    start = time.perf_counter_ns()
    for _ in range(n):
        timed(12, 0, 0, 0)
    wrapped = time.perf_counter_ns() - start
    start = time.perf_counter_ns()
    for _ in range(n):
        bare(12, 0, 0, 0)
    return (wrapped - (time.perf_counter_ns() - start)) / n


def _by_request(t: Timers, fn: Callable[..., Any]) -> Callable[..., Any]:
    """One ctypes ptrace function timed per request type (PTRACE_GETREGS, ...)."""
    timed = {req: t.wrap(f"ptrace {name}", fn) for req, name in REQUESTS}
    other = t.wrap("ptrace (other requests)", fn)

    def call(request: int, *args: Any) -> Any:
        return timed.get(request, other)(request, *args)

    return call


def _keeping_gil(fn: ctypes._CFuncPtr) -> ctypes._CFuncPtr:
    """The same libc ptrace, called with the GIL held (argtypes and restype kept)."""
    twin = ctypes.PyDLL(None).ptrace
    twin.restype = fn.restype
    if fn.argtypes is not None:
        twin.argtypes = fn.argtypes
    return twin


def install(t: Timers, keep_gil: bool) -> None:
    os.waitpid = t.wrap("waitpid", os.waitpid)
    for name, value in list(vars(ptrace_ops).items()):
        if isinstance(value, ctypes._CFuncPtr) and value.__name__ == "ptrace":
            setattr(ptrace_ops, name, _by_request(t, _keeping_gil(value) if keep_gil else value))
    from runtime.session import Session

    caller = Session._caller

    def timed_caller(self: Any, probe: Any) -> Callable[..., None]:
        return t.wrap("handler", caller(self, probe))

    Session._caller = timed_caller  # type: ignore[method-assign]


def main() -> int:
    args = sys.argv[1:]
    keep_gil = args[:1] == ["--keep-gil"]
    args = args[1:] if keep_gil else args
    out = Path(args[0])
    overhead = wrapper_cost_ns()
    timers = Timers()
    install(timers, keep_gil)
    from uplang.cli import main as cli_main

    try:
        code = cli_main(args[1:])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    steps = {k: [timers.calls[k], timers.ns[k]] for k in timers.calls if timers.calls[k]}
    out.write_text(json.dumps({"steps": steps, "wrapper_ns": overhead}))
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
