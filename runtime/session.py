"""The runtime's library API: spawn or attach, add probes, run, detach.

All methods except `stop()` must be called from the thread that created the session (the
tracer thread): the kernel only lets the thread that attached a tracee operate on it.
Handlers run on that thread while the hit thread is stopped; `ctx.defer(fn)` moves the slow
part to the effect thread. See docs/architecture.md "Session".
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime import trapguard
from runtime.attach import attach_failure, exe_or_empty, seize_all_threads, seize_process
from runtime.context import HitContext
from runtime.detach import detach_all
from runtime.effects import EffectRunner
from runtime.elfsyms import SymbolCache
from runtime.engine import Engine
from runtime.errors import PlacementError, TargetError, UprobeError
from runtime.fanotify import NO_CAP_SYS_ADMIN, FanotifyPermissionError, has_cap_sys_admin
from runtime.sampler import Sampler
from runtime.spawn import StdStream, pin_tracer, start_traced
from runtime.spawn import kill as kill_child
from runtime.systemwide import SystemWide
from runtime.threads import Thread
from runtime.uprobes import Probe
from runtime.wakeup import Timer, TimerClock, Waker

if TYPE_CHECKING:
    from runtime.stacks import Stacks


@dataclass(frozen=True)
class ExitStatus:
    """How a session ended: `code` (exit status) or `signal` (killing signal) of the main
    process, or `detached`; `reason` is the line to show the user."""

    code: int | None
    signal: int | None
    detached: bool
    reason: str


class Session:
    """A traced program and its probes. Create with `spawn` or `attach`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.effects = EffectRunner()
        self.symbols = SymbolCache()
        self._stacks: Stacks | None = None
        # --no-demangle: C++ names in stacks as the symbol table has them.
        self.demangle_stacks = True
        self._stop_requested = False
        self._detached = False
        self._waker = Waker()
        self._clock = TimerClock(self._waker.wake)
        engine.waker_pid = self._waker.pid
        self._soon: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._waking = False
        self._wake_again = False
        engine.on_wake = self._on_wake
        # Test hook (documented in docs/architecture.md): UPROBE_TEST_FAULT=N makes the Nth
        # probe hit raise InjectedFault, so the internal-error path can be tested for real.
        self._fault_at = _fault_hit(os.environ.get("UPROBE_TEST_FAULT", ""))
        self._hits = 0
        # System-wide tracing (Session.system_wide): runs until stop(), not until the
        # traced processes are gone; `watch` takes processes over once started.
        self.whole_system = False
        self.watch: SystemWide | None = None

    # -- construction ----------------------------------------------------------------

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        follow_forks: bool = True,
        stdin: StdStream = None,
        stdout: StdStream = None,
        stderr: StdStream = None,
        cwd: str | None = None,
        cpu: int | None = None,
    ) -> Session:
        """Run `argv` traced; returns with the program stopped once the dynamic linker
        has mapped its libraries and before any of their code ran (relocation, IFUNC
        resolvers, constructors, main), ready for probes.
        `cpu`: pin the tracer thread to that CPU, and the program's first thread with it
        (inherited through the fork: the program's own affinity changes, knowingly)."""
        if not argv:
            raise TargetError("no command to run")
        if cpu is not None:
            pin_tracer(cpu)
        pid = start_traced(argv, env, cwd, (stdin, stdout, stderr))
        engine = Engine(follow_forks)
        engine.main_pid = pid
        try:
            proc = engine.add_process(pid, spawned=True)
            proc.trap_action = trapguard.ignored_action(pid)
            th = engine.add_thread(proc, pid)
            th.stopped = True
            session = cls(engine)
        except BaseException:
            kill_child(pid)
            raise
        reached: list[Thread] = []

        def at_entry(t: Thread) -> None:
            t.held = True
            reached.append(t)

        try:
            # From the start: probes on libraries follow every dlopen, even before main.
            engine.installer.watch_mappings(proc)
            engine.installer.set_ready_hook(proc, at_entry)
            engine.resume(th)
            engine.run(lambda: bool(reached) or not engine.procs)
        except BaseException:
            session._close()
            kill_child(pid)
            raise
        return session

    @classmethod
    def attach(cls, pid: int, *, follow_forks: bool = True, cpu: int | None = None) -> Session:
        """Trace the running process `pid`: every thread is seized without being stopped.
        `cpu`: pin the tracer thread to that CPU; the program's affinity is never touched."""
        if cpu is not None:
            pin_tracer(cpu)
        engine = Engine(follow_forks)
        engine.main_pid = pid
        exe = exe_or_empty(pid)
        seize_process(pid)
        try:
            proc = engine.add_process(pid, spawned=False)
            engine.add_thread(proc, pid)
            seize_all_threads(engine, proc)
            # Before any breakpoint of ours can be hit (see runtime/trapguard.py).
            engine.guard_traps(proc)
            engine.installer.watch_mappings(proc)
            return cls(engine)
        except BaseException as exc:
            # Let go of whatever was seized before failing.
            with contextlib.suppress(Exception):
                detach_all(engine)
            failure = attach_failure(pid, exe, exc)
            if failure is exc:
                raise
            raise failure from None

    @classmethod
    def system_wide(cls, *, follow_forks: bool = True, cpu: int | None = None) -> Session:
        """No process yet: add the probes, then `watch_files()` takes over every process
        that has a probed file mapped, now or later (fanotify; needs CAP_SYS_ADMIN)."""
        if not has_cap_sys_admin():
            raise FanotifyPermissionError(NO_CAP_SYS_ADMIN)
        if cpu is not None:
            pin_tracer(cpu)
        session = cls(Engine(follow_forks))
        session.whole_system = True
        return session

    def watch_files(self, report: Callable[[str], None], comms: Sequence[str] = ()) -> SystemWide:
        """System-wide: mark every file the probes name, then attach the processes that
        have one mapped; later execs and loads are taken over as they happen. `comms`:
        only processes with one of these names. `report(line)` is told of processes that
        cannot be traced (another tracer holds them)."""
        paths = [p.placement.path for p in self.engine.registry]
        self.watch = SystemWide(self.engine, self.call_soon, report, comms,
                                skip_pids=[self._waker.pid])
        self.watch.start(paths)
        return self.watch

    # -- probes ----------------------------------------------------------------------

    def add_probe(
        self,
        placement: Any,
        handler: Callable[[HitContext], Any],
        kind: str = "entry",
        sync: bool = False,
        label: str = "",
        semaphore: int | None = None,
        reads_regs: bool = True,
        installer: Any = None,
    ) -> Probe:
        """Install `handler` at `placement` (a resolve.Placement: file identity + offset)
        in every executable mapping of that file in every traced process. A file that is
        not mapped anywhere yet keeps the probe pending: it goes in when an exec or a
        dlopen maps the file, and leaves with a dlclose (`sites(probe)` tells how many
        sites it has now). `semaphore`: the file offset of a USDT semaphore in the same
        file, raised once per process while the probe is in place. `reads_regs=False`
        promises that the handler never uses ctx.regs, arg(), retval, ustack() or
        set_reg(): where every probe promises it, a hit reads rip alone (the others are
        stale in ctx.regs). A refused site raises PlacementError with the x86 reason.
        `installer`: another placement strategy's installer (runtime/jump/strategy.py);
        it puts the probe in each process, falling back on int3s where it cannot."""
        if kind not in ("entry", "return"):
            raise UprobeError(f"unknown probe kind {kind!r} (entry or return)")
        if kind == "return" and placement.sym_offset:
            # Only at the first instruction does [rsp] hold the return address.
            raise PlacementError(
                f"a return probe must be at the start of {placement.symbol}, "
                f"not at +{placement.sym_offset}"
            )
        probe = Probe(placement=placement, handler=handler, kind=kind, sync=sync, label=label,
                      semaphore=semaphore, reads_regs=reads_regs, installer=installer)
        probe.call = self._caller(probe)
        self.engine.installer.add(probe)
        return probe

    def remove_probe(self, probe: Probe) -> None:
        self.engine.installer.remove(probe)

    def on_exec(self, callback: Callable[[int], None]) -> None:
        """Call `callback(pid)` on the tracer thread when traced process `pid` has exec'd
        and its libraries are mapped (before any of their code runs), before pending
        probes go in:
        probes added there (specs resolved again against the new image) are placed too."""
        self.engine.on_exec = callback

    def sites(self, probe: Probe) -> int:
        """How many breakpoints carry `probe` right now, over every traced process."""
        return sum(
            1
            for proc in self.engine.procs.values()
            for bp in proc.sites.values()
            if probe in bp.consumers or probe in bp.returns
        )

    def _caller(self, probe: Probe) -> Callable[[Thread, Any], None]:
        handler = probe.handler
        assert handler is not None
        effects = self.effects
        if self._fault_at:
            handler = self._faulty(handler)

        sync = probe.sync

        # One context per thread, re-pointed at each hit: a thread is in one hit at a
        # time, and a context is valid only during the handler call (the contract).
        def call(th: Thread, regs: Any) -> None:
            ctx = th.hit_ctx
            if ctx is None or ctx.regs is not regs:
                ctx = th.hit_ctx = HitContext(self, th, regs, probe)
            else:
                ctx.reset(probe)
            handler(ctx)
            if sync and ctx.deferred:
                effects.drain()

        return call

    def _faulty(self, handler: Callable[[HitContext], Any]) -> Callable[[HitContext], Any]:
        def call(ctx: HitContext) -> Any:
            self._hits += 1
            if self._hits == self._fault_at:
                raise InjectedFault(f"injected fault at probe hit {self._hits} "
                                    "(UPROBE_TEST_FAULT)")
            return handler(ctx)
        return call

    # -- timers, running, stopping ---------------------------------------------------

    def add_timer(self, period_ns: int, callback: Callable[[], None]) -> Timer:
        """Call `callback()` every `period_ns` on the tracer thread; the target keeps running."""
        if period_ns <= 0:
            raise UprobeError("a timer period must be positive")
        return self._clock.add(period_ns, callback)

    def remove_timer(self, timer: Timer) -> None:
        """The timer never fires again (a tick already due included)."""
        self._clock.remove(timer)

    def add_sampler(self, hz: int, handler: Callable[[HitContext], Any],
                    label: str = "", on_cpu: bool = True) -> Sampler:
        """Call `handler(ctx)` `hz` times a second for every thread of every traced process
        that is on a CPU (as bpftrace's profile), or for every thread when `on_cpu` is
        false (a wall-clock profile); each is stopped meanwhile (runtime/sampler.py)."""
        if hz <= 0:
            raise UprobeError("a sampling rate must be positive")

        def context(th: Thread, regs: Any, probe: Any) -> HitContext:
            return HitContext(self, th, regs, probe)

        sampler = Sampler(self.engine, context, handler, label or f"profile:hz:{hz}", on_cpu)
        sampler.timer = self._clock.add(max(1, 1_000_000_000 // hz), sampler.tick)
        return sampler

    def remove_sampler(self, sampler: Sampler) -> None:
        """No more samples from `sampler`."""
        self._clock.remove(sampler.timer)

    def batch(self) -> AbstractContextManager[None]:
        """`with session.batch():` around many add_probe calls reads each process's
        mappings once for all of them (runtime/installer.py)."""
        return self.engine.installer.batch()

    def on_thread_exit(self, callback: Callable[[int, int], None]) -> None:
        """Call `callback(pid, tid)` on the tracer thread whenever a traced thread is gone
        (so per-thread state such as `self->` variables can be dropped: tids are reused)."""
        self.engine.on_thread_exit = callback

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn()` on the tracer thread as soon as it is free (inside `run()`); safe
        from any thread. This is how other threads add or remove probes: only the tracer
        thread may operate on the tracees."""
        self._soon.put(fn)
        self._waker.wake()

    def _on_wake(self) -> None:
        # A callback that places a probe may dispatch stops, the helper's included: run
        # nested wake-ups after the current one instead of inside it.
        if self._waking:
            self._wake_again = True
            return
        self._waking = True
        try:
            self._wake_again = True
            while self._wake_again:
                self._wake_again = False
                while True:
                    try:
                        fn = self._soon.get_nowait()
                    except queue.Empty:
                        break
                    fn()
                # Once stop() was asked for, no further tick runs: run() is about to end.
                self._clock.run_due(lambda: self._stop_requested)
        finally:
            self._waking = False

    def stop(self) -> None:
        """Make `run()` detach and return; safe from any thread or a signal handler."""
        # A plain store: an Event's lock could deadlock when a signal handler calls us.
        self._stop_requested = True
        if not self._detached:
            # After close the waker's descriptor number may belong to another file.
            self._waker.wake()

    def run(self) -> ExitStatus:
        """Trace until every traced process is gone or `stop()` was called; detaches on
        stop and on any error (then re-raises). Deferred work is drained before returning."""
        engine = self.engine
        try:
            for th in list(engine.threads.values()):
                if th.held:
                    th.held = False
                    engine.resume(th)
            whole_system = self.whole_system
            engine.run(lambda: (not engine.procs and not whole_system) or self._stop_requested)
        except BaseException:
            with contextlib.suppress(Exception):
                self.detach()
            raise
        if engine.procs or self.whole_system:
            # Effects of hits before the stop come out before the target runs on: its
            # threads wait at their next breakpoint until the detach.
            self.effects.drain()
            self.detach()
            status = ExitStatus(None, None, True, "detached: stop requested")
        else:
            status = _describe(engine.main_status)
            self._close()
        if self.effects.error is not None:
            err, self.effects.error = self.effects.error, None
            raise err
        return status

    def detach(self) -> None:
        """Leave every traced process as it was (int3s removed, return addresses restored)
        and let it run on; idempotent."""
        if self._detached:
            return
        try:
            if self.watch is not None:
                # First: no process is taken over any more, none is left half seized.
                self.watch.close()
            if self.engine.procs:
                detach_all(self.engine)
        finally:
            self._close()

    def _close(self) -> None:
        if self._detached:
            return
        self._detached = True
        self._clock.close()
        self._waker.close()
        self.effects.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # -- helpers for handlers --------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.engine.main_pid

    @property
    def stacks(self) -> Stacks:
        """The stack walker and symboliser, made on first use: the unwinder and the DWARF
        reader behind it cost a tenth of a second to import, and most scripts never ask."""
        if self._stacks is None:
            from runtime.stacks import Stacks

            self._stacks = Stacks(self.symbols)
            self._stacks.demangle = self.demangle_stacks
        return self._stacks

    def symbolize(self, pid: int, addr: int) -> str:
        """`name+off` for a runtime address of `pid` (the maps are re-read on a miss or
        after the process's mappings changed), else the hex address."""
        proc = self.engine.procs.get(pid)
        hit = self.stacks.symbolize(pid, addr, proc.maps_generation if proc else 0)
        if hit is None:
            return f"{addr:#x}"
        name, off = hit
        return f"{name}+{off}" if off else name


class InjectedFault(RuntimeError):
    """The internal error that UPROBE_TEST_FAULT asks for (not a UprobeError: it stands
    for a bug in the tracer)."""


def _fault_hit(text: str) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        return 0


def _describe(status: int | None) -> ExitStatus:
    if status is None:
        return ExitStatus(None, None, False, "target is gone")
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return ExitStatus(code, None, False, f"target exited with status {code}")
    sig = os.WTERMSIG(status)
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    return ExitStatus(None, sig, False, f"target killed by {name}")
