"""Running a Plan: compile its handlers, place its probes in a Session, and print like bpftrace.

The order is bpftrace's: probes are placed while a spawned target is still stopped before
main, `Attached N probes` goes to stderr, BEGIN runs before the target is let go, hits run
their compiled handlers, END runs after the last hit (target gone, exit(), Ctrl-C, SIGTERM),
then every non-empty map is printed. Ctrl-C is a normal end: the session detaches, the
target runs on, and the exit code is 0 as with bpftrace.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TextIO

from runtime.errors import UprobeError
from runtime.handlers.codegen import CompileError
from runtime.handlers.compiler import compile_plan
from runtime.handlers.contexts import ManualContext, ProbeInfo
from runtime.handlers.emit import Emitter
from runtime.handlers.support import HandlerSupport
from runtime.maps import MapStore
from runtime.output.chrometrace import ChromeTrace
from runtime.output.printf import PrintfFormat
from runtime.placement import TRACE_KINDS, Placer, Settings, TrapStrategy
from uplang.plan import Plan, PlanProbe


@dataclass(frozen=True)
class RunOptions:
    """The command line's run settings (uplang.app.cli builds this)."""

    command: str | None
    pid: int | None
    fmt: str = "text"
    output: str | None = None
    quiet: bool = False
    unsafe: bool = False
    debug: bool = False
    follow_forks: bool = True
    verbose: bool = False
    # --cpu: pin the tracer (and a -c program's first thread) to this CPU.
    cpu: int | None = None
    # --trap: every probe as an int3, none as a jump into in-target code.
    trap: bool = False
    # --no-demangle: func, usym and ustack show C++ names as the symbol table spells them.
    demangle: bool = True
    # --trace FILE: a Chrome JSON trace for Perfetto UI / chrome://tracing.
    trace: str | None = None
    # --comm: system-wide probes take only processes with one of these names.
    comms: tuple[str, ...] = ()


# How often map counters are sampled into a --trace file.
COUNTER_PERIOD_NS = 50_000_000


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
    placer: Placer | None = None
    jump: Any = None  # runtime.jump.strategy.JumpRun while the jump path is in use
    stop_requested: threading.Event = field(default_factory=threading.Event)
    attached: int = 0
    local_timers: list[tuple[int, Callable[[], None]]] = field(default_factory=list)
    system_wide: bool = False
    trace: ChromeTrace | None = None

    def __post_init__(self) -> None:
        if self.options.trace is not None:
            self.trace = ChromeTrace(self.options.trace, time.monotonic_ns())
            self.emitter.trace = self.trace
        self.emitter.sink.on_broken_pipe = self.request_stop
        self.settings = dataclasses.replace(
            Settings.of(self.plan.config),
            unsafe=self.options.unsafe or self.plan.unsafe)
        self.store = MapStore()
        self.store.declare(self.plan.maps)
        self.support = HandlerSupport(
            maps=self.store, emitter=self.emitter, stop=self.request_stop,
            params=self.plan.params, unsafe=self.options.unsafe or self.plan.unsafe,
            uaddr_lookup=uaddr_lookup, demangle=self.options.demangle,
        )
        self.settings.apply(self.store, self.support)
        try:
            self.handlers = compile_plan(self.plan, self.support, PrintfFormat.parse)
        except CompileError as exc:
            raise ExecutorError(str(exc)) from None
        self.by_kind: dict[str, list[PlanProbe]] = {}
        for probe in self.plan.probes:
            self.by_kind.setdefault(probe.kind, []).append(probe)

    # ------------------------------------------------------------------ the run

    def execute(self) -> int:
        traced = [p for k in TRACE_KINDS for p in self.by_kind.get(k, [])]
        has_process = self.options.command is not None or self.options.pid is not None
        # No -c/-p: the probes' files are watched system-wide (runtime/systemwide.py).
        self.system_wide = bool(traced) and not has_process
        if "profile" in self.by_kind and not has_process:
            raise ExecutorError("profile probes sample a process: give -c CMD or -p PID")
        if self.options.comms and not self.system_wide:
            raise ExecutorError("--comm selects processes for system-wide probes: "
                                "it does not go with -c or -p")
        # The handlers stay in place until the maps are out: a second Ctrl-C (or SIGTERM,
        # SIGHUP) during the detach, END or the printout only repeats the stop request.
        with self._signals():
            if has_process or self.system_wide:
                self.session = self._open_session()
            failed: Exception | None = None
            try:
                try:
                    self._place()
                    if self.system_wide:
                        # Marks on the probes' files, then the processes running them.
                        self.session.watch_files(self._warn, self.options.comms)
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
                    try:
                        self._run_until_done()
                    except Exception as exc:  # noqa: BLE001 - reported after END, below
                        # An error while tracing ends like any other end (the session has
                        # detached already): END and the maps, then the error (exit 2).
                        failed = exc
            finally:
                if self.session is not None:
                    self.session.detach()
                if self.jump is not None:
                    # Every event the target wrote has run, every shared map is merged.
                    self.jump.stop()
            self._run_special("end")
            self._write_trace()
            if self.settings.print_maps_on_exit:
                self.emitter.final_maps(self.store)
            for name, lost in sorted(self.store.dropped.items()):
                self.emitter.stderr(
                    f"WARNING: @{name}: {lost} new keys dropped: the map was full "
                    f"(max_map_keys = {self.store.max_keys})\n"
                )
            if self.jump is not None and self.jump.lost():
                self.emitter.stderr(f"Lost {self.jump.lost()} events\n")
            if self.jump is not None and self.options.verbose:
                for name, value in self.jump.counters().items():
                    if value:
                        self.emitter.stderr(f"jump path: {name.replace('_', ' ')}: {value}\n")
            self.emitter.flush()
            if failed is not None:
                raise failed
        return self.support.exit_code

    # ------------------------------------------------------------------ --trace

    def _merged(self, probe: PlanProbe, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        """An interval handler sees the maps the target updates merged first (the jump
        path's shared maps), as its printouts and reads would on the trap path."""
        jump = self.jump
        if jump is None or probe.kind != "interval":
            return handler

        def merged_first(ctx: Any) -> None:
            jump.flush()
            handler(ctx)

        return merged_first

    def _traced(self, probe: PlanProbe, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        """The handler, recording the hit in the trace first: a slice begins at the entry
        of a function that is also probed at its return, and ends there; any other hit
        is an instant. The hit's identity is queued ahead of its deferred effects, so
        that printf text is placed at the hit's time."""
        trace = self.trace
        if trace is None or probe.kind not in (*TRACE_KINDS, "profile"):
            return handler
        returns = {(p.target, p.func) for p in self.plan.probes if p.kind == "uretprobe"}
        entries = {(p.target, p.func) for p in self.plan.probes
                   if p.kind == "uprobe" and not p.offset and p.address is None}
        paired = (probe.target, probe.func) in (returns & entries) and (
            probe.kind == "uretprobe" or (not probe.offset and probe.address is None))
        record: Callable[..., None]
        if paired and probe.kind == "uprobe":
            record = trace.begin
        elif paired:
            record = trace.end
        else:
            record = partial(trace.instant, cat=probe.kind)
        names = trace.names

        def traced(ctx: Any) -> None:
            ns, pid, tid = ctx.nsecs, ctx.pid, ctx.tid
            if (pid, tid) not in names:
                trace.thread(pid, tid, ctx.comm)
            record(getattr(ctx.probe, "symbol", "") or probe.spec, pid, tid, ns)
            ctx.defer(partial(setattr, trace, "current", (pid, tid, ns)))
            handler(ctx)

        return traced

    def _trace_counters(self) -> None:
        if self.trace is not None and self.session is not None:
            self.trace.counters(self.store, time.monotonic_ns(), self.session.pid)

    def _write_trace(self) -> None:
        if self.trace is None:
            return
        self._trace_counters()
        try:
            self.trace.write()
        except OSError as exc:
            self.emitter.stderr(f"ERROR: cannot write the trace {self.trace.path}: "
                                f"{exc.strerror}\n")

    def _kill_spawned(self) -> None:
        if self.session is not None and self.options.command is not None:
            try:
                os.kill(self.session.pid, signal.SIGKILL)
            except OSError:
                pass

    def _print_sources(self) -> None:
        """--debug: the generated Python of every clause, on stderr."""
        for clause in self.handlers.values():
            self.emitter.stderr(f"// clause {clause.index}\n{clause.source}")

    def _open_session(self) -> Any:
        from runtime.session import Session

        if self.system_wide:
            session = Session.system_wide(follow_forks=self.options.follow_forks,
                                          cpu=self.options.cpu)
        elif self.options.command is not None:
            argv = shlex.split(self.options.command)
            if not argv:
                raise ExecutorError("-c needs a command")
            session = Session.spawn(argv, follow_forks=self.options.follow_forks,
                                    cpu=self.options.cpu)
            self.support.cpid = session.pid
        else:
            assert self.options.pid is not None
            session = Session.attach(self.options.pid, follow_forks=self.options.follow_forks,
                                     cpu=self.options.cpu)
        # `self->` variables die with their thread.
        session.on_thread_exit(self.support.thread_exited)
        session.demangle_stacks = self.options.demangle
        self.placer = Placer(session, self.settings, warn=self.emitter.stderr,
                             note=self.emitter.stderr if self.options.verbose else None,
                             strategies=self._strategies(session.pid))
        if self.jump is not None:
            jump, support = self.jump, self.support

            def thread_exited(pid: int, tid: int) -> None:
                support.thread_exited(pid, tid)
                jump.thread_exited(pid, tid)

            session.on_thread_exit(thread_exited)
        session.on_exec(self.placer.after_exec)
        return session

    def _strategies(self, pid: int | None) -> tuple[Any, ...]:
        """The jump path in front of the trap, unless --trap or nothing runs in-target."""
        trap = TrapStrategy()
        # --trace records each hit in the tracer, which only the trap path sees.
        if self.options.trap or self.options.trace is not None:
            return (trap,)
        from runtime.jump.strategy import jump_strategy

        jump = jump_strategy(self.plan, self.store, self.support, self.settings, pid)
        self.jump = jump.run
        return (jump, trap)

    def _warn(self, line: str) -> None:
        self.emitter.stderr(line + "\n")

    def _place(self) -> None:
        """Every probe of the plan: traced ones and timed ones into the session (the
        placer applies missing_probes and max_probes), BEGIN and END counted as bpftrace
        counts them."""
        if self.placer is not None:
            clauses = self.plan.clauses
            order = [*TRACE_KINDS, "interval", "profile"]
            self.placer.place_all(
                (p, clauses[p.clause],
                 self._merged(p, self._traced(p, self.handlers[p.clause].handler)))
                for k in order for p in self.by_kind.get(k, []))
            if self.trace is not None and self.session is not None:
                self.session.add_timer(COUNTER_PERIOD_NS, self._trace_counters)
            self.attached = sum(len(g.parts) for g in self.placer.groups)
        else:
            for probe in self.by_kind.get("interval", []):
                self._add_local_timer(probe)
            self.attached = len(self.local_timers)
        self.attached += len(self.by_kind.get("begin", [])) + len(self.by_kind.get("end", []))

    def _add_local_timer(self, probe: PlanProbe) -> None:
        handler = self.handlers[probe.clause].handler
        info = ProbeInfo(probe.spec, "interval")

        def tick() -> None:
            handler(ManualContext(info, _run_now))

        self.local_timers.append((probe.period_ns, tick))

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
        """exit(), Ctrl-C, SIGTERM, SIGHUP: end the session cleanly (thread-safe); a
        repeated request changes nothing."""
        if self.stop_requested.is_set():
            return
        self.stop_requested.set()
        if self.jump is not None and self.support.stopped[0]:
            # exit() on the user side: hits in the target stop running clauses at once,
            # as trap-path hits reported after it run nothing.
            self.jump.stop_hits()
        if self.session is not None:
            self.session.stop()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: object) -> None:
            self.request_stop()

        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        old = {s: signal.signal(s, on_signal) for s in stops}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _run_now(fn: Callable[[], None]) -> None:
    fn()


def uaddr_lookup(pid: int, name: str) -> int:
    """uaddr("sym"): the symbol's runtime address in the process's main executable."""
    from runtime import procfs
    from runtime.elfsyms import ElfFile

    try:
        elf = ElfFile.open(procfs.exe(pid))
    except (OSError, UprobeError):
        return 0
    vaddr = elf.symbol_vaddr(name)
    if vaddr is None:
        return 0
    return vaddr + (elf.load_bias(pid) or 0)


__all__ = ["ExecutorError", "RunOptions", "run_plan", "uaddr_lookup"]
