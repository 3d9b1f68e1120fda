"""Running a Plan: compile its handlers, place its probes in a Session, and print like bpftrace.

The order is bpftrace's: probes are placed while a spawned target is still stopped before
main, `Attached N probes` goes to stderr, BEGIN runs before the target is let go, hits run
their compiled handlers, END runs after the last hit (target gone, exit(), Ctrl-C, SIGTERM),
then every non-empty map is printed. Ctrl-C is a normal end: the session detaches, the
target runs on, and the exit code is 0 as with bpftrace.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from runtime.errors import UprobeError
from runtime.handlers.codegen import CompileError
from runtime.handlers.compiler import compile_plan
from runtime.handlers.contexts import ManualContext, ProbeInfo, UsdtContext
from runtime.handlers.emit import Emitter
from runtime.handlers.support import HandlerSupport
from runtime.maps import MapStore
from runtime.output.printf import PrintfFormat
from uplang.plan import Plan, PlanProbe

TRACE_KINDS = ("uprobe", "uretprobe", "usdt")
DEFAULT_MAX_STRLEN = 64


@dataclass(frozen=True)
class RunOptions:
    """The command line's run settings (uplang.cli builds this)."""

    command: str | None
    pid: int | None
    fmt: str = "text"
    output: str | None = None
    quiet: bool = False
    unsafe: bool = False
    debug: bool = False
    follow_forks: bool = True
    verbose: bool = False


class ExecutorError(UprobeError):
    """The plan cannot run as asked (no target for uprobes, unsupported probe kind, ...)."""


def run_plan(plan: Plan, options: RunOptions) -> int:
    """Run the plan to its end; returns the process exit code (0 also after Ctrl-C)."""
    with _output_stream(options.output) as stream:
        emitter = Emitter(options.fmt, stream, sys.stderr)
        return PlanRun(plan, options, emitter).execute()


@contextmanager
def _output_stream(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        f = open(path, "w", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except OSError as exc:
        raise ExecutorError(f"cannot write {path}: {exc.strerror}") from None
    with f:
        yield f


@dataclass
class PlanRun:
    """One execution of a plan: state that lives from compile to the final map printout."""

    plan: Plan
    options: RunOptions
    emitter: Emitter
    session: Any = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    attached: int = 0
    local_timers: list[tuple[int, Callable[[], None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = MapStore(self.plan.maps)
        max_strlen = self.plan.config.get("max_strlen", DEFAULT_MAX_STRLEN)
        self.support = HandlerSupport(
            maps=self.store, emitter=self.emitter, stop=self.request_stop,
            params=self.plan.params, max_strlen=int(max_strlen or DEFAULT_MAX_STRLEN),
            unsafe=self.options.unsafe or self.plan.unsafe, uaddr_lookup=_uaddr_lookup,
        )
        try:
            self.handlers = compile_plan(self.plan, self.support, PrintfFormat.parse)
        except CompileError as exc:
            raise ExecutorError(str(exc)) from None
        self.by_kind: dict[str, list[PlanProbe]] = {}
        for probe in self.plan.probes:
            self.by_kind.setdefault(probe.kind, []).append(probe)

    # ------------------------------------------------------------------ the run

    def execute(self) -> int:
        if "profile" in self.by_kind:
            raise ExecutorError("profile probes are not supported yet: the session offers "
                                "no way to sample a running thread")
        traced = [p for k in TRACE_KINDS for p in self.by_kind.get(k, [])]
        if traced and self.options.command is None and self.options.pid is None:
            raise ExecutorError("uprobe, uretprobe and usdt probes need a process: "
                                "give -c CMD or -p PID")
        if self.options.command is not None or self.options.pid is not None:
            self.session = self._open_session()
        try:
            with self._signals():
                try:
                    self._place(traced)
                except BaseException:
                    # Probes that cannot go in: a spawned command must not run untraced.
                    self._kill_spawned()
                    raise
                if not self.options.quiet:
                    self.emitter.attached(self.attached)
                if self.options.debug:
                    self._print_sources()
                self._run_special("begin")
                if not self.stop_requested.is_set():
                    self._run_until_done()
        finally:
            if self.session is not None:
                self.session.detach()
        self._run_special("end")
        self.emitter.final_maps(self.store)
        self.emitter.flush()
        return 0

    def _kill_spawned(self) -> None:
        if self.session is not None and self.options.command is not None:
            try:
                os.kill(_session_pid(self.session), signal.SIGKILL)
            except (OSError, ExecutorError):
                pass

    def _print_sources(self) -> None:
        """--debug: the generated Python of every clause, on stderr."""
        for clause in self.handlers.values():
            self.emitter.stderr(f"// clause {clause.index}\n{clause.source}")

    def _open_session(self) -> Any:
        from runtime.session import Session

        if self.options.command is not None:
            argv = shlex.split(self.options.command)
            if not argv:
                raise ExecutorError("-c needs a command")
            session = Session.spawn(argv, follow_forks=self.options.follow_forks)
            self.support.cpid = _session_pid(session)
        else:
            session = Session.attach(self.options.pid, follow_forks=self.options.follow_forks)
        # `self->` variables die with their thread; without this hook the support prunes
        # dead threads itself (see HandlerSupport.prune_threads).
        hook = getattr(session, "on_thread_exit", None)
        if callable(hook):
            hook(self.support.thread_exited)
        return session

    def _place(self, probes: list[PlanProbe]) -> None:
        from runtime.resolve import resolve_uprobe, resolve_usdt

        pid = _session_pid(self.session) if self.session is not None else None
        for probe in probes:
            clause = self.plan.clauses[probe.clause]
            handler = self.handlers[probe.clause].handler
            if probe.kind == "usdt":
                for up in resolve_usdt(probe.target, probe.usdt_provider, probe.usdt_name, pid):
                    label = f"usdt:{up.placement.path}:{up.probe.provider}:{up.probe.name}"
                    self._add(up.placement, _usdt_handler(handler, up), "entry", clause.sync,
                              label)
                continue
            ret = probe.kind == "uretprobe"
            placements = resolve_uprobe(probe.target, probe.func, probe.offset, probe.address,
                                        pid, want_return=ret)
            for pl in placements:
                where = pl.symbol or f"0x{pl.vaddr:x}"
                if probe.offset and pl.symbol:
                    where += f"+{probe.offset}"
                label = f"{probe.kind}:{pl.path}:{where}"
                self._add(pl, handler, "return" if ret else "entry", clause.sync, label)
        self.attached += len(self.by_kind.get("begin", [])) + len(self.by_kind.get("end", []))
        for probe in self.by_kind.get("interval", []):
            self.attached += 1
            self._add_timer(probe)

    def _add(self, placement: Any, handler: Callable[[Any], None], kind: str, sync: bool,
             label: str) -> None:
        self.session.add_probe(placement, handler, kind=kind, sync=sync, label=label)
        self.attached += 1
        if self.options.verbose:
            self.emitter.stderr(f"{label}: {placement.path} file offset "
                                f"0x{placement.file_offset:x}{' (sync)' if sync else ''}\n")

    def _add_timer(self, probe: PlanProbe) -> None:
        handler = self.handlers[probe.clause].handler
        info = ProbeInfo(probe.spec, "interval")

        def tick() -> None:
            handler(ManualContext(info, self._timer_defer))

        if self.session is not None:
            self.session.add_timer(probe.period_ns, tick)
        else:
            self.local_timers.append((probe.period_ns, tick))

    def _timer_defer(self, fn: Callable[[], None]) -> None:
        # Timer handlers run in the tracer between hits; their effects must still come out
        # in order with the hits' effects, so they go through the same queue when there is one.
        effects = getattr(self.session, "effects", None)
        if effects is not None:
            effects.submit(fn)
        else:
            fn()

    def _run_special(self, kind: str) -> None:
        for probe in self.by_kind.get(kind, []):
            handler = self.handlers[probe.clause].handler
            handler(ManualContext(ProbeInfo(probe.spec, kind), _run_now))
            if kind == "begin" and self.stop_requested.is_set():
                return

    def _run_until_done(self) -> None:
        if self.session is not None:
            self.session.run()
            return
        self._local_loop()

    def _local_loop(self) -> None:
        """No target: BEGIN/END/interval only, as `bpftrace -e 'BEGIN {...}'` runs."""
        timers = [(period, time.monotonic_ns() + period, tick)
                  for period, tick in self.local_timers]
        while not self.stop_requested.is_set():
            if not timers:
                self.stop_requested.wait()
                break
            timers.sort(key=lambda t: t[1])
            period, due, tick = timers[0]
            delay = max(0, due - time.monotonic_ns()) / 1e9
            if self.stop_requested.wait(delay):
                break
            tick()
            timers[0] = (period, due + period, tick)

    # ------------------------------------------------------------------ stopping

    def request_stop(self) -> None:
        """exit(), Ctrl-C, SIGTERM: end the session cleanly (thread-safe)."""
        self.stop_requested.set()
        if self.session is not None:
            self.session.stop()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: object) -> None:
            self.request_stop()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _run_now(fn: Callable[[], None]) -> None:
    fn()


def _session_pid(session: Any) -> int:
    for name in ("pid", "main_pid"):
        value = getattr(session, name, None)
        if isinstance(value, int):
            return value
    raise ExecutorError("the session does not report its process id")


def _uaddr_lookup(pid: int, name: str) -> int:
    """uaddr("sym"): the symbol's runtime address in the process's main executable."""
    import os

    from runtime.elfsyms import ElfFile

    try:
        elf = ElfFile.open(os.readlink(f"/proc/{pid}/exe"))
    except (OSError, UprobeError):
        return 0
    vaddr = elf.symbol_vaddr(name)
    if vaddr is None:
        return 0
    return vaddr + (elf.load_bias(pid) or 0)


def _usdt_handler(handler: Callable[[Any], None], up: Any) -> Callable[[Any], None]:
    from runtime.elfsyms import ElfFile

    elf = ElfFile.open(up.placement.path)
    note = up.probe
    biases: dict[int, int] = {}

    def on_hit(ctx: Any) -> None:
        bias = biases.get(ctx.pid)
        if bias is None:
            bias = biases[ctx.pid] = elf.load_bias(ctx.pid) or 0
        handler(UsdtContext(ctx, note, elf, bias))

    return on_hit


__all__ = ["ExecutorError", "RunOptions", "run_plan"]
