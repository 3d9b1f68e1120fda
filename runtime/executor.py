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

from runtime.errors import ResolveError, TargetError, UprobeError
from runtime.handlers.codegen import CompileError
from runtime.handlers.compiler import compile_plan
from runtime.handlers.contexts import ManualContext, ProbeInfo, UsdtContext
from runtime.handlers.emit import Emitter
from runtime.handlers.support import HandlerSupport
from runtime.maps import MapStore
from runtime.output.printf import PrintfFormat
from uplang import ast
from uplang.astwalk import walk
from uplang.plan import Plan, PlanClause, PlanProbe

TRACE_KINDS = ("uprobe", "uretprobe", "usdt")
DEFAULT_MAX_STRLEN = 64
# bpftrace's default: a map holds at most this many keys; new keys beyond are dropped.
DEFAULT_MAX_MAP_KEYS = 4096


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
    # --cpu: pin the tracer (and a -c program's first thread) to this CPU.
    cpu: int | None = None
    # --comm: system-wide probes take only processes with one of these names.
    comms: tuple[str, ...] = ()


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
    traced: list[PlanProbe] = field(default_factory=list)
    # (spec, kind, dev, ino, file offset) of every placement added: no double probes when
    # specs are resolved again after an exec.
    placed: set[tuple[int, str, int, int, int]] = field(default_factory=set)
    system_wide: bool = False

    def __post_init__(self) -> None:
        self.store = MapStore(
            max_keys=int(self.plan.config.get("max_map_keys", DEFAULT_MAX_MAP_KEYS) or 0)
        )
        self.store.declare(self.plan.maps)
        max_strlen = self.plan.config.get("max_strlen", DEFAULT_MAX_STRLEN)
        self.support = HandlerSupport(
            maps=self.store, emitter=self.emitter, stop=self.request_stop,
            params=self.plan.params, max_strlen=int(max_strlen or DEFAULT_MAX_STRLEN),
            unsafe=self.options.unsafe or self.plan.unsafe, uaddr_lookup=uaddr_lookup,
            stack_mode=str(self.plan.config.get("stack_mode", "bpftrace")),
        )
        try:
            self.handlers = compile_plan(self.plan, self.support, PrintfFormat.parse)
        except CompileError as exc:
            raise ExecutorError(str(exc)) from None
        # Clauses whose handlers never read registers: decided once, not per placement.
        self.register_free = {c.index for c in self.plan.clauses if not reads_registers(c)}
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
                    self._place(traced)
                    if self.system_wide:
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
            self._run_special("end")
            if self.plan.config.get("print_maps_on_exit", 1):
                self.emitter.final_maps(self.store)
            for name, lost in sorted(self.store.dropped.items()):
                self.emitter.stderr(
                    f"WARNING: @{name}: {lost} new keys dropped: the map was full "
                    f"(max_map_keys = {self.store.max_keys})\n"
                )
            self.emitter.flush()
            if failed is not None:
                raise failed
        return self.support.exit_code

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

        if self.system_wide:
            session = Session.system_wide(follow_forks=self.options.follow_forks,
                                          cpu=self.options.cpu)
        elif self.options.command is not None:
            argv = shlex.split(self.options.command)
            if not argv:
                raise ExecutorError("-c needs a command")
            session = Session.spawn(argv, follow_forks=self.options.follow_forks,
                                    cpu=self.options.cpu)
            self.support.cpid = _session_pid(session)
        else:
            session = Session.attach(self.options.pid, follow_forks=self.options.follow_forks,
                                     cpu=self.options.cpu)
        # `self->` variables die with their thread; without this hook the support prunes
        # dead threads itself (see HandlerSupport.prune_threads).
        hook = getattr(session, "on_thread_exit", None)
        if callable(hook):
            hook(self.support.thread_exited)
        session.on_exec(self._on_exec)
        return session

    def _warn(self, line: str) -> None:
        self.emitter.stderr(line + "\n")

    def _place(self, probes: list[PlanProbe]) -> None:
        pid = None
        if self.session is not None and not self.system_wide:
            pid = _session_pid(self.session)
        self.traced = probes
        missing = self.plan.config.get("missing_probes", "error")
        for probe in probes:
            try:
                self._place_probe(probe, pid)
            except ResolveError as exc:
                # config missing_probes: a spec that matches nothing is an error (default),
                # a warning, or ignored.
                if missing == "error":
                    raise
                if missing == "warn":
                    self.emitter.stderr(f"WARNING: {probe.spec}: {exc.message}\n")
        limit = self.plan.config.get("max_probes")
        if limit and self.attached > int(limit):
            raise ExecutorError(
                f"the script places {self.attached} probes, more than max_probes = {limit}"
            )
        self.attached += len(self.by_kind.get("begin", [])) + len(self.by_kind.get("end", []))
        for probe in self.by_kind.get("interval", []):
            self.attached += 1
            self._add_timer(probe)
        for probe in self.by_kind.get("profile", []):
            self.attached += 1
            hz = max(1, round(1_000_000_000 / probe.period_ns)) if probe.period_ns else 1
            self.session.add_sampler(hz, self.handlers[probe.clause].handler, probe.spec)

    def _place_probe(self, probe: PlanProbe, pid: int | None) -> int:
        """Resolve one probe spec against the files of `pid` and add the placements not
        added before; returns how many were added."""
        from runtime.resolve import resolve_uprobe, resolve_usdt

        clause = self.plan.clauses[probe.clause]
        handler = self.handlers[probe.clause].handler
        added = 0
        if probe.kind == "usdt":
            for up in resolve_usdt(probe.target, probe.usdt_provider, probe.usdt_name, pid):
                label = f"usdt:{up.placement.path}:{up.probe.provider}:{up.probe.name}"
                added += self._add(probe, up.placement, usdt_handler(handler, up), "entry",
                                   clause.sync, label, up.semaphore_offset)
            return added
        ret = probe.kind == "uretprobe"
        placements = resolve_uprobe(probe.target, probe.func, probe.offset, probe.address,
                                    pid, want_return=ret)
        for pl in placements:
            where = pl.symbol or f"0x{pl.vaddr:x}"
            if probe.offset and pl.symbol:
                where += f"+{probe.offset}"
            label = f"{probe.kind}:{pl.path}:{where}"
            added += self._add(probe, pl, handler, "return" if ret else "entry", clause.sync,
                               label)
        return added

    def _on_exec(self, pid: int) -> None:
        """A traced process exec'd: resolve every spec again against its new image, where
        "" (the main executable), short names and wildcards may name other files. A spec
        that matches nothing there is not an error: the new program is simply not probed
        by it. Sites already placed (the same file) are not added twice."""
        for probe in self.traced:
            try:
                added = self._place_probe(probe, pid)
            except (ResolveError, TargetError):
                continue
            except UprobeError as exc:
                self.emitter.stderr(f"warning: {probe.spec} in pid {pid}: {exc}\n")
                continue
            if added and self.options.verbose:
                self.emitter.stderr(f"{probe.spec}: {added} more after exec in pid {pid}\n")

    def _add(self, probe: PlanProbe, placement: Any, handler: Callable[[Any], None], kind: str,
             sync: bool, label: str, semaphore: int | None = None) -> int:
        """Add one placement of a spec unless it is there already (after an exec the same
        file resolves again); returns 1 if added."""
        key = (id(probe), kind, placement.dev, placement.ino, placement.file_offset)
        if key in self.placed:
            return 0
        # Only plain uprobes: USDT handlers decode their arguments from registers
        # (usdt_handler) and return probes need rsp at the entry.
        lean = (probe.kind == "uprobe" and kind == "entry"
                and probe.clause in self.register_free)
        self.session.add_probe(placement, handler, kind=kind, sync=sync, label=label,
                               semaphore=semaphore, reads_regs=not lean)
        self.placed.add(key)
        self.attached += 1
        if self.options.verbose:
            self.emitter.stderr(f"{label}: {placement.path} file offset "
                                f"0x{placement.file_offset:x}{' (sync)' if sync else ''}\n")
        return 1

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
        """exit(), Ctrl-C, SIGTERM, SIGHUP: end the session cleanly (thread-safe); a
        repeated request changes nothing."""
        if self.stop_requested.is_set():
            return
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

        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        old = {s: signal.signal(s, on_signal) for s in stops}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


# What a clause may use and still never look at the hit thread's registers: identity,
# time, memory and the map functions. Anything not listed counts as reading them.
REGISTER_FREE_BUILTINS = frozenset(
    {"pid", "tid", "ppid", "uid", "gid", "comm", "cpu", "nsecs", "elapsed", "cpid", "rand",
     "probe"})
REGISTER_FREE_CALLS = frozenset(
    {"printf", "print", "str", "buf", "strlen", "strcontains", "strncmp", "usym", "uaddr",
     "time", "strftime", "cat", "exit", "system", "sleep", "count", "sum", "avg", "min",
     "max", "stats", "hist", "lhist", "delete", "clear", "zero", "has_key", "len"})


def reads_registers(clause: PlanClause) -> bool:
    """Whether the clause's handler may read registers (arg*, retval, reg(), ustack, func,
    ...): a probe whose handler does not lets the engine skip GETREGS at its hits."""
    roots = ([clause.predicate] if clause.predicate is not None else []) + list(clause.body)
    for root in roots:
        for node in walk(root):
            if isinstance(node, ast.Builtin) and node.name not in REGISTER_FREE_BUILTINS:
                return True
            if isinstance(node, ast.Call) and node.name not in REGISTER_FREE_CALLS:
                return True
    return False


def _run_now(fn: Callable[[], None]) -> None:
    fn()


def _session_pid(session: Any) -> int:
    for name in ("pid", "main_pid"):
        value = getattr(session, name, None)
        if isinstance(value, int):
            return value
    raise ExecutorError("the session does not report its process id")


def uaddr_lookup(pid: int, name: str) -> int:
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


def usdt_handler(handler: Callable[[Any], None], up: Any) -> Callable[[Any], None]:
    """A usdt placement's handler: the hit context's arg(n) read the note's argument specs."""
    from runtime.elfsyms import ElfFile

    elf = ElfFile.open(up.placement.path)
    note = up.probe

    def on_hit(ctx: Any) -> None:
        # At the hit rip is the probe's runtime pc: that gives the load bias of this very
        # mapping, right after an exec or a second dlopen at another address too.
        handler(UsdtContext(ctx, note, elf, note.bias_at(ctx.regs.rip)))

    return on_hit


__all__ = ["ExecutorError", "RunOptions", "run_plan", "uaddr_lookup", "usdt_handler"]
