"""USDT probes from <sys/sdt.h> in a live process: in the executable and in a shared
library (linked, or loaded by dlopen later), with and without semaphores.

usdt_lib_main.c prints the semaphores as the program itself sees them, which is the
ground truth for raising (once per process while attached), lowering (probe removed,
detach, fork child let go) and never going below what the program set itself.
"""

from __future__ import annotations

import collections
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from programs.rt_support import Spawned

from runtime.resolve import resolve_usdt
from runtime.session import Session

pytestmark = pytest.mark.timeout(120)

FLAGS = ("-O1",)


def build_pair(builder, *defines: str) -> tuple[Path, Path]:
    lib = builder.build("usdt_lib.c", *FLAGS, *defines, shared=True)
    main = builder.build("usdt_lib_main.c", *FLAGS, *defines, "-Wl,--no-as-needed", str(lib),
                         f"-Wl,-rpath,{lib.parent}")
    return main, lib


@pytest.fixture(scope="module")
def with_sems(builder) -> tuple[Path, Path]:
    return build_pair(builder)


@pytest.fixture(scope="module")
def without_sems(builder) -> tuple[Path, Path]:
    return build_pair(builder, "-DUSDT_NO_SEMAPHORES")


Hits = collections.Counter


def add_usdt(session: Session, path: Path, provider: str, name: str, hits: Hits,
             pid: int | None = None) -> list[Any]:
    """Probe every site of provider:name in `path`; hits count (pid, arg0, arg1)."""
    handles = []
    for up in resolve_usdt(str(path), provider, name, pid):
        note = up.probe

        def on_hit(ctx, note=note):
            args = tuple(note.arg(i).evaluate(ctx.regs, ctx.read) for i in range(len(note.args)))
            hits[(ctx.pid, *args)] += 1

        handles.append(session.add_probe(up.placement, on_hit, label=f"{provider}:{name}",
                                         semaphore=up.semaphore_offset))
    assert handles
    return handles


class Program:
    """usdt_lib_main driven line by line through its stdin."""

    def __init__(self, argv: list[str], reaper) -> None:  # noqa: ANN001
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        reaper.add(self.proc.pid)

    def ask(self, command: str, lines: int = 1) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return [self.proc.stdout.readline().rstrip("\n") for _ in range(lines)]

    def quit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("q\n")
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


class Tracer:
    """A session attached from its own thread (the tracer thread), running until stopped;
    `on_tracer(fn)` runs fn there and waits for it."""

    def __init__(self, pid: int, setup: Callable[[Session], None], follow_forks: bool = True):
        self.error: BaseException | None = None
        self.session: Session | None = None
        ready = threading.Event()

        def main() -> None:
            try:
                self.session = Session.attach(pid, follow_forks=follow_forks)
                setup(self.session)
            except BaseException as e:
                self.error = e
                if self.session is not None:
                    self.session.detach()
                ready.set()
                return
            ready.set()
            try:
                self.session.run()
            except BaseException as e:
                self.error = e

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert ready.wait(60)
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def on_tracer(self, fn: Callable[[], None]) -> None:
        done = threading.Event()

        def call() -> None:
            try:
                fn()
            finally:
                done.set()

        assert self.session is not None
        self.session.call_soon(call)
        assert done.wait(60)

    def stop(self) -> None:
        assert self.session is not None
        self.session.stop()
        self.thread.join(60)
        assert not self.thread.is_alive()
        self.check()


def test_semaphores_raised_while_attached_and_lowered_on_remove_and_detach(with_sems, reaper):
    main, lib = with_sems
    prog = Program([str(main)], reaper)
    pid = prog.proc.pid
    assert prog.ask("t 1") == ["ticks 1 lib-sem 0 main-sem 0"]
    assert prog.ask("s 2") == ["set 2"]  # the program's own setting
    hits: Hits = Hits()
    handles: dict[str, list[Any]] = {}

    def setup(s: Session) -> None:
        handles["lib"] = add_usdt(s, lib, "usdtlib", "tick", hits, pid)
        handles["main"] = add_usdt(s, main, "usdtmain", "loop", hits, pid)

    tracer = Tracer(pid, setup)
    # Raised once each, on top of the program's own 2.
    assert prog.ask("t 4") == ["ticks 4 lib-sem 3 main-sem 3"]
    assert hits == Hits({(pid, i, i * 10): 1 for i in range(1, 5)} | {(pid, i): 1 for i in range(1, 5)})
    session = tracer.session
    assert session is not None
    tracer.on_tracer(lambda: [session.remove_probe(h) for h in handles["main"]])
    assert prog.ask("t 1") == ["ticks 1 lib-sem 3 main-sem 2"]
    assert hits[(pid, 1, 10)] == 2 and hits[(pid, 1)] == 1
    tracer.stop()
    assert prog.ask("t 2") == ["ticks 2 lib-sem 2 main-sem 2"]
    assert sum(hits.values()) == 9
    prog.quit()


@pytest.mark.parametrize("follow", [True, False])
def test_fork_child_inherits_raised_semaphores(with_sems, reaper, follow):
    """A followed child's copy is raised and counted as ours (lowered at detach); a child
    that is not followed gets its copy lowered before it runs."""
    main, lib = with_sems
    prog = Program([str(main)], reaper)
    pid = prog.proc.pid
    hits: Hits = Hits()

    def setup(s: Session) -> None:
        add_usdt(s, lib, "usdtlib", "tick", hits, pid)
        add_usdt(s, main, "usdtmain", "loop", hits, pid)

    tracer = Tracer(pid, setup, follow_forks=follow)
    child_line, forked = prog.ask("f 3", 2)
    child = int(forked.split()[1])
    reaper.add(child)
    sem = 1 if follow else 0
    assert child_line == f"child ticks 3 lib-sem {sem} main-sem {sem}"
    assert prog.ask("t 2") == ["ticks 2 lib-sem 1 main-sem 1"]
    by_pid = collections.Counter(key[0] for key in hits.elements())
    assert by_pid == ({pid: 4, child: 6} if follow else {pid: 4})
    tracer.stop()
    assert prog.ask("r", 2) == ["child after lib-sem 0 main-sem 0", "reaped"]
    assert prog.ask("t 1") == ["ticks 1 lib-sem 0 main-sem 0"]
    prog.quit()


def test_probes_without_semaphores_in_executable_and_library(without_sems, reaper, tmp_path):
    main, lib = without_sems
    run = Spawned([str(main), "t 3", "t 2"], tmp_path, reaper)
    hits: Hits = Hits()
    add_usdt(run.session, lib, "usdtlib", "tick", hits)
    add_usdt(run.session, main, "usdtmain", "loop", hits)
    assert run.run().code == 0
    assert run.output() == "ticks 3 lib-sem -1 main-sem -1\nticks 2 lib-sem -1 main-sem -1\n"
    pid = run.session.pid
    expected = Hits({(pid, i, i * 10): 1 for i in range(1, 4)} | {(pid, i): 1 for i in range(1, 4)})
    expected.update({(pid, i, i * 10): 1 for i in range(1, 3)} | {(pid, i): 1 for i in range(1, 3)})
    assert hits == expected


def test_usdt_with_semaphore_in_a_library_loaded_by_dlopen(with_sems, builder, reaper, tmp_path):
    """The semaphore is raised in each new mapping of the library (the library reports
    what it saw as `ret`), and the probe fires in every loaded period."""
    _, lib = with_sems
    host = builder.build("late_host.c", "-O1")
    run = Spawned([str(host), str(lib), "usdt_lib_tick", "3"], tmp_path, reaper)
    hits: Hits = Hits()
    add_usdt(run.session, lib, "usdtlib", "tick", hits)
    assert run.run().code == 0
    assert run.output() == ("period 1 calls 2 ret 1\nperiod 2 calls 3 ret 1\n"
                            "period 3 calls 4 ret 1\ndone\n")
    pid = run.session.pid
    assert hits == Hits({(pid, p, p * 10): p + 1 for p in range(1, 4)})
