"""Live editing of probes in a running target: the runtime side of the REPL.

Why a driver of its own: `uprobe run` compiles one plan and runs it to the end, while the
REPL adds and deletes clauses while the target runs, and the clauses' state (maps,
thread-locals) must outlive every edit. So one HandlerSupport with one MapStore lives as
long as the driver, every edit compiles a plan against it (the executor's compile_plan),
and only the new clauses' handlers are placed.

Threads: ptrace only answers the thread that attached, so a tracer thread per target owns
the Session from spawn/attach to detach and runs `Session.run()`. The REPL thread hands it
work through `_Tracer.call`: a queue of its own (so that work queued as the target goes
away is failed, not lost) drained on the tracer thread through `Session.call_soon`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, TypeVar

from runtime.elfsyms import ElfFile
from runtime.errors import UprobeError
from runtime.executor import uaddr_lookup
from runtime.handlers.codegen import CompileError
from runtime.handlers.compiler import compile_plan
from runtime.handlers.contexts import Handler, Hit, ManualContext, ProbeInfo
from runtime.handlers.emit import Emitter
from runtime.handlers.support import HandlerSupport
from runtime.maps import MapError, MapStore
from runtime.output.printf import PrintfFormat
from runtime.placement import TRACE_KINDS, PlacedProbe, Placer, Settings
from uplang import ast
from uplang.plan import Plan, PlanClause, PlanProbe
from uplang.vocab.probetypes import TIMED_KINDS

T = TypeVar("T")

# How long the REPL waits for the tracer to finish one piece of work.
CALL_TIMEOUT_S = 60.0


class LiveError(UprobeError):
    """A live edit that cannot be done (no such clause, no process, unsupported probe)."""


class ProbeNotPlaced(LiveError):
    """One probe of a new clause cannot go into the target; `probe` says which, so that
    the REPL can point at its spelling."""

    def __init__(self, message: str, probe: PlanProbe) -> None:
        super().__init__(message)
        self.probe = probe


@dataclass(eq=False)
class LiveClause:
    """One clause as the user typed it, and what it placed in the current target.

    `hits` counts handler calls (bumped on the tracer thread); `sites` is how many things
    (breakpoints, timers, samplers) the clause has in the current target (0 while
    unattached)."""

    number: int
    text: str
    kinds: tuple[str, ...]
    specs: tuple[str, ...]
    handler: Handler
    probes: tuple[PlanProbe, ...]
    plan_clause: PlanClause
    hits: int = 0
    placed: list[PlacedProbe] = field(default_factory=list)

    @property
    def sync(self) -> bool:
        return self.plan_clause.sync

    @property
    def sites(self) -> int:
        return sum(len(g.parts) for g in self.placed)

    def count_hit(self) -> None:
        self.hits += 1


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time of the write, so that probe output
    goes through prompt_toolkit's patch_stdout proxy while the prompt is shown."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class _Tracer:
    """The tracer thread of one target: opens the session, places what is live, runs the
    session, and executes the work other threads queue for it."""

    def __init__(self, opener: Callable[[], Any], setup: Callable[[Any], None],
                 on_end: Callable[[_Tracer, str], None]) -> None:
        self._opener = opener
        self._setup = setup
        self._on_end = on_end
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self._draining = False
        self._finished = False
        self._nudge: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self.session: Any = None
        self.placer: Placer | None = None
        self.ready: Future[int] = Future()
        self.thread = threading.Thread(target=self._main, name="uprobe-tracer", daemon=True)

    def start(self, timeout: float = CALL_TIMEOUT_S) -> int:
        self.thread.start()
        try:
            return self.ready.result(timeout)
        except FutureTimeout:
            raise LiveError(f"the target did not stop within {timeout:.0f} s") from None

    def _main(self) -> None:
        try:
            session = self._opener()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self.ready.set_exception(exc)
            return
        self.session = session
        reason = "detached"
        try:
            self._setup(session)
            self._nudge = lambda: session.call_soon(self._drain)
            self.ready.set_result(session.pid)
            reason = session.run().reason
        except UprobeError as exc:
            reason = f"error: {exc.message}"
        except BaseException as exc:  # noqa: BLE001 - the REPL must learn why, not die
            reason = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                session.detach()
            with self._lock:
                self._finished = True
            self._fail_pending()
            if not self.ready.done():
                self.ready.set_exception(LiveError(reason))
            else:
                self._on_end(self, reason)

    def _drain(self) -> None:
        # Placing a probe may run the engine's loop, which may run timers: no nesting.
        if self._draining:
            return
        self._draining = True
        try:
            while True:
                try:
                    fn, fut = self._work.get_nowait()
                except queue.Empty:
                    return
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    fut.set_exception(exc)
        finally:
            self._draining = False

    def _fail_pending(self) -> None:
        while True:
            try:
                _fn, fut = self._work.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(LiveError("the target is gone"))

    def call(self, fn: Callable[[], T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run `fn()` on the tracer thread and return its result (or raise its error)."""
        if threading.current_thread() is self.thread:
            return fn()
        fut: Future[T] = Future()
        with self._lock:
            if self._finished:
                raise LiveError("the target is gone")
            self._work.put((fn, fut))
        self._nudge()
        try:
            return fut.result(timeout)
        except FutureTimeout:
            raise LiveError(f"the tracer did not answer within {timeout:.0f} s") from None

    def stop(self, timeout: float = CALL_TIMEOUT_S) -> None:
        """Detach (the session restores everything) and wait for the thread to end."""
        if self.session is not None:
            self.session.stop()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)


class LiveDriver:
    """Clauses added and deleted one at a time against at most one target at a time.

    out/diag: where probe output and status lines go (None: the current sys.stdout).
    Every method is called from one thread (the REPL's); the driver forwards ptrace work
    to the target's tracer thread.
    """

    def __init__(self, out: IO[str] | None = None, diag: IO[str] | None = None, *,
                 fmt: str = "text", unsafe: bool = False,
                 params: tuple[str, ...] = ()) -> None:
        stream: Any = out if out is not None else _CurrentStdout()
        self.out = stream
        self.diag: Any = diag if diag is not None else stream
        self.emitter = Emitter(fmt, stream, self.diag)
        self.store = MapStore()
        self.support = HandlerSupport(maps=self.store, emitter=self.emitter,
                                      stop=self._handler_stop, params=params, unsafe=unsafe,
                                      uaddr_lookup=uaddr_lookup)
        # The config of the live script so far (each added plan carries all of it).
        self.settings = Settings()
        self.settings.apply(self.store, self.support)
        self.clauses: list[LiveClause] = []
        self.ended: list[str] = []  # why each target went away, oldest first
        self._numbers = 0
        self._tracer: _Tracer | None = None
        self._detaching = False

    # ------------------------------------------------------------------ the target

    @property
    def pid(self) -> int | None:
        t = self._tracer
        if t is None or t.session is None or not t.thread.is_alive():
            return None
        return int(t.session.pid)

    def spawn(self, command: str | Sequence[str], *, stdin: Any = subprocess.DEVNULL,
              stdout: Any = None, stderr: Any = None) -> int:
        """Start `command` traced; the live clauses go in before its main runs."""
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not argv:
            raise LiveError("no command to run")

        def opener() -> Any:
            from runtime.session import Session

            with contextlib.ExitStack() as opened:
                fds = [_fd_of(s, opened) for s in (stdin, stdout, stderr)]
                session = Session.spawn(argv, stdin=fds[0], stdout=fds[1], stderr=fds[2])
            self.support.cpid = session.pid
            return session

        return self._open(opener)

    def attach(self, pid: int) -> int:
        """Trace the running process `pid`; the live clauses are placed into it."""
        def opener() -> Any:
            from runtime.session import Session

            return Session.attach(pid)

        return self._open(opener)

    def _open(self, opener: Callable[[], Any]) -> int:
        if self.pid is not None:
            raise LiveError(f"already tracing pid {self.pid}: :detach first")
        failures: list[str] = []

        def setup(session: Any) -> None:
            # `self->` variables die with their thread; probes follow an exec.
            session.on_thread_exit(self.support.thread_exited)
            placer = tracer.placer = Placer(session, self.settings, warn=self.emitter.stderr)
            session.on_exec(placer.after_exec)
            for clause in self.clauses:
                try:
                    self._place(placer, clause)
                except UprobeError as exc:
                    failures.append(f"[{clause.number}] not placed: {exc.message}")

        tracer = _Tracer(opener, setup, self._target_ended)
        self._tracer = tracer
        try:
            pid = tracer.start()
        except UprobeError:
            self._tracer = None
            raise
        for line in failures:
            self.emitter.error(line)
        return pid

    def _target_ended(self, tracer: _Tracer, reason: str) -> None:
        """On the tracer thread, as it ends: the clauses no longer have sites anywhere."""
        for clause in self.clauses:
            clause.placed.clear()
        self.ended.append(reason)
        if not self._detaching:
            self.emitter.stderr(f"[{reason}]\n")

    def detach(self) -> str:
        """Leave the target as it was (int3s out, return addresses back) and let it run."""
        tracer = self._tracer
        if tracer is None or not tracer.thread.is_alive():
            self._tracer = None
            raise LiveError("not attached to any process")
        self._detaching = True
        try:
            tracer.stop()
        finally:
            self._detaching = False
        self._tracer = None
        return self.ended[-1] if self.ended else "detached"

    def _handler_stop(self) -> None:
        # exit() in a handler: end tracing as `uprobe run` does, but keep the REPL going.
        tracer = self._tracer
        if tracer is not None and tracer.session is not None:
            tracer.session.stop()

    # ------------------------------------------------------------------ clauses

    def add(self, plan: Plan, indices: Sequence[int], texts: Sequence[str]) -> list[LiveClause]:
        """Make clauses `indices` of `plan` live. `plan` holds every live clause plus the
        new ones (so that the checks and handler types see the whole script); only the new
        ones are compiled into handlers that get placed. All or nothing: when one probe
        cannot be placed, the clauses of this call are taken out again and the error raised.
        """
        handlers = self._compile(plan)
        new: list[LiveClause] = []
        for index, text in zip(indices, texts, strict=True):
            pc = plan.clauses[index]
            probes = tuple(p for p in plan.probes if p.clause == index)
            kinds = tuple(dict.fromkeys(p.kind for p in probes))
            number = self._numbers + len(new) + 1
            new.append(LiveClause(number, text, kinds, tuple(p.spec for p in probes),
                                  handlers[index], probes, pc))
        tracer = self._live_tracer()
        placer = tracer.placer if tracer is not None else None
        if tracer is not None and placer is not None and any(_needs_target(c) for c in new):
            placed: list[LiveClause] = []

            def place_all() -> None:
                for clause in new:
                    try:
                        self._place(placer, clause)
                    except BaseException:
                        for done in placed:
                            self._unplace(placer, done)
                        raise
                    placed.append(clause)

            tracer.call(place_all)
        # Numbers are taken only now: a refused input leaves no gap in the numbering.
        self._numbers += len(new)
        self.clauses.extend(new)
        for clause in new:
            if "begin" in clause.kinds:
                self._run_special(clause, "begin")
        return new

    def delete(self, number: int) -> LiveClause:
        """Take clause `number` out: its probes leave the target (other clauses' stay)."""
        clause = self.clause(number)
        tracer = self._live_tracer()
        placer = tracer.placer if tracer is not None else None
        if tracer is not None and placer is not None and clause.placed:
            # The target may end meanwhile: then its breakpoints are gone with it.
            with contextlib.suppress(LiveError):
                tracer.call(lambda: self._unplace(placer, clause))
        clause.placed.clear()
        self.clauses.remove(clause)
        return clause

    def clause(self, number: int) -> LiveClause:
        for c in self.clauses:
            if c.number == number:
                return c
        raise LiveError(f"no clause {number} (see :probes)")

    def _live_tracer(self) -> _Tracer | None:
        t = self._tracer
        return t if t is not None and t.thread.is_alive() and t.session is not None else None

    def _compile(self, plan: Plan) -> dict[int, Handler]:
        try:
            self.store.declare(plan.maps)
        except MapError as exc:
            # A map that still holds values from earlier (perhaps deleted) clauses.
            raise LiveError(f"{exc.message} from earlier clauses; :clear it first, or use "
                            f"another map name") from None
        self.support.params = plan.params
        self.support.unsafe = self.support.unsafe or plan.unsafe
        # Settings are the live script's config so far: the placer of the current target
        # shares the object's values through `self.settings`, replaced here.
        self.settings = Settings.of(plan.config)
        self.settings.apply(self.store, self.support)
        tracer = self._tracer
        if tracer is not None and tracer.placer is not None:
            tracer.placer.settings = self.settings
        try:
            compiled = compile_plan(plan, self.support, PrintfFormat.parse)
        except CompileError as exc:
            raise LiveError(str(exc)) from None
        return {i: c.handler for i, c in compiled.items()}

    # ------------------------------------------------------------------ placement (tracer)

    def _place(self, placer: Placer, clause: LiveClause) -> None:
        """On the tracer thread: resolve and place every probe of the clause; a probe
        that cannot be placed raises ProbeNotPlaced naming it, with nothing of the clause
        left in the target."""
        handler = _counting(clause, self.emitter)
        for probe in clause.probes:
            if probe.kind not in TRACE_KINDS and probe.kind not in TIMED_KINDS:
                continue
            try:
                clause.placed.extend(placer.place_all([(probe, clause.plan_clause, handler)]))
            except UprobeError as exc:
                self._unplace(placer, clause)
                raise ProbeNotPlaced(exc.message, probe) from None

    @staticmethod
    def _unplace(placer: Placer, clause: LiveClause) -> None:
        for group in clause.placed:
            placer.remove(group)
        clause.placed.clear()

    def _run_special(self, clause: LiveClause, kind: str) -> None:
        for probe in clause.probes:
            if probe.kind == kind:
                clause.count_hit()
                clause.handler(ManualContext(ProbeInfo(probe.spec, kind), _run_now))

    # ------------------------------------------------------------------ maps

    def map_names(self) -> list[str]:
        return [n for n in self.store.names() if self.store.len(n) or self.store.map(n).kind]

    def print_map(self, name: str) -> None:
        """`:print @m`: the map as `print(@m)` shows it."""
        if name not in self.store:
            raise LiveError(f"no map @{name}")
        m = self.store.map(name)
        if not m.entries:
            self.emitter.stderr(f"{m.display_name} is empty\n")
            return
        self.emitter.map(m, 0, 0)
        self.emitter.flush()

    def print_maps(self) -> int:
        """`:maps`: every non-empty map, by name, as `print(@m)` shows it; how many."""
        shown = [m for m in self.store.maps() if m.entries]
        for m in shown:
            self.emitter.map(m, 0, 0)
        self.emitter.flush()
        return len(shown)

    def clear_map(self, name: str) -> None:
        if name not in self.store:
            raise LiveError(f"no map @{name}")
        self.store.clear(name)

    # ------------------------------------------------------------------ leaving

    def close(self) -> None:
        """Run END clauses, detach from the target (if any); the driver stays usable."""
        for clause in list(self.clauses):
            if "end" in clause.kinds:
                self._run_special(clause, "end")
        if self._live_tracer() is not None:
            with contextlib.suppress(LiveError):
                self.detach()
        self.emitter.flush()


def _needs_target(clause: LiveClause) -> bool:
    return any(k in TRACE_KINDS or k in TIMED_KINDS for k in clause.kinds)


def _counting(clause: LiveClause, emitter: Emitter) -> Handler:
    """The clause's handler with its hit count, and errors reported in the output rather
    than raised into the tracer (which would end the session for every clause)."""
    handler = clause.handler
    bump = clause.count_hit
    number = clause.number

    def on_hit(ctx: Hit) -> None:
        bump()
        try:
            handler(ctx)
        except UprobeError as exc:
            ctx.defer(partial(emitter.error, f"clause [{number}]: {exc.message}"))

    return on_hit


def _run_now(fn: Callable[[], None]) -> None:
    fn()


def _fd_of(stream: Any, opened: contextlib.ExitStack) -> Any:
    """subprocess.DEVNULL means /dev/null, opened only for the spawn."""
    if stream == subprocess.DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR)
        opened.callback(os.close, fd)
        return fd
    return stream


__all__ = ["LiveClause", "LiveDriver", "LiveError", "LiveSymbols", "ProbeNotPlaced"]


class LiveSymbols:
    """The REPL completer's view of the target (uplang.app.complete.CompletionSource): files
    mapped in the traced process, their function names and USDT notes, maps in use.
    Lookups that fail (no such library, not an ELF) complete nothing rather than raise."""

    def __init__(self, driver: LiveDriver) -> None:
        self.driver = driver
        self._types: dict[str, Any] = {}  # target -> runtime.dwarf.source.DwarfTypes

    def members(self, target: str, func: str, chain: Sequence[str]) -> list[str]:
        """`args.` completion from DWARF: parameters, then members along `chain`."""
        from runtime.dwarf.source import DwarfTypes

        types = self._types.setdefault(target, DwarfTypes([target], pid=self.driver.pid))
        try:
            sig = types.signature(ast.ProbeSpec("uprobe", target, func))
            if isinstance(sig, str):
                return []
            params = {p.name: p.type for p in sig.params}
            if not chain:
                return list(params)
            ref = params.get(chain[0])
            for name in chain[1:]:
                layout = types.layout(ref.name) if ref is not None else None
                member = next((m for m in layout.members if m.name == name), None) if (
                    layout is not None) else None
                ref = member.type if member is not None else None
            layout = types.layout(ref.name) if ref is not None else None
            return [m.name for m in layout.members] if layout is not None else []
        except (UprobeError, OSError):
            return []

    def mapped_objects(self) -> list[str]:
        from runtime.procmaps import mapped_files, read_maps

        pid = self.driver.pid
        if pid is None:
            return []
        try:
            return mapped_files(read_maps(pid), executable_only=True)
        except UprobeError:
            return []

    def functions(self, target: str) -> list[str]:
        names: set[str] = set()
        for path in self._paths(target):
            with contextlib.suppress(UprobeError, OSError):
                names.update(ElfFile.open(path).names)
        return sorted(names)

    def usdt_probes(self, target: str) -> list[tuple[str, str]]:
        from runtime.usdt import read_probes

        found: set[tuple[str, str]] = set()
        for path in self._paths(target):
            with contextlib.suppress(UprobeError, OSError):
                found.update((p.provider, p.name) for p in read_probes(path))
        return sorted(found)

    def map_names(self) -> list[str]:
        return self.driver.store.names()

    def clause_numbers(self) -> list[int]:
        return [c.number for c in self.driver.clauses]

    def _paths(self, target: str) -> list[str]:
        from runtime.resolve import find_targets

        try:
            return find_targets(target, self.driver.pid)
        except (UprobeError, OSError):
            return []
