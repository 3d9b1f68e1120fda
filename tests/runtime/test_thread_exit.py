"""Thread exits: the session reports them, and the executor drops that thread's `self->`
variables then, so a new thread that gets an old tid starts with none.

Ground truth: tests/programs/more_threads.c writes the tid of every worker thread; in
"reuse" mode it makes each new thread get the previous one's tid (as happens by itself
once pids wrap around), so stale thread-locals would show.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from runtime.executor import PlanRun, RunOptions
from runtime.handlers.emit import Emitter
from runtime.resolve import resolve_uprobe
from runtime.session import Session
from uplang.checks import CheckOptions
from uplang.planner import compile_script

FLAGS = ("-O1", "-fno-omit-frame-pointer")


@pytest.fixture(scope="module")
def prog(builder) -> Path:
    return builder.build("more_threads.c", *FLAGS)


def worker_tids(path: Path) -> list[int]:
    return [int(line.split()[1]) for line in path.read_text().splitlines()]


@pytest.mark.timeout(60)
def test_session_reports_every_thread_exit_on_the_tracer_thread(prog, tmp_path, reaper) -> None:
    out = tmp_path / "tids"
    s = Session.spawn([str(prog), "5", str(out)])
    reaper.add(s.pid)
    seen: list[tuple[int, int, int]] = []
    s.on_thread_exit(lambda pid, tid: seen.append((pid, tid, threading.get_ident())))
    status = s.run()
    assert status.code == 0
    tids = worker_tids(out)
    assert len(tids) == 5
    me = threading.get_ident()
    # Every worker (waitpid may report two exits in either order), then the main thread,
    # the process leader, when the program ends.
    assert sorted((pid, tid) for pid, tid, _ in seen[:-1]) == sorted((s.pid, t) for t in tids)
    assert seen[-1][:2] == (s.pid, s.pid)
    assert all(ident == me for _, _, ident in seen)


def run_script(prog: Path, text: str, *args: str) -> tuple[PlanRun, str]:
    plan = compile_script(text, "t.up", CheckOptions(has_process=True, has_command=True))
    options = RunOptions(command=" ".join([str(prog), *args]), pid=None, quiet=True)
    stream = io.StringIO()
    run = PlanRun(plan, options, Emitter("text", stream, io.StringIO()))
    assert run.execute() == 0
    return run, stream.getvalue()


SCRIPT = """
uprobe:{p}:more_check {{ printf("check %d %d\\n", tid, self->x); }}
uprobe:{p}:more_set {{ self->x = arg0; }}
uretprobe:{p}:more_set {{ printf("set %d %d\\n", tid, self->x); }}
"""


@pytest.mark.timeout(60)
def test_a_thread_reusing_a_tid_does_not_see_the_old_self_variables(prog, tmp_path) -> None:
    out = tmp_path / "tids"
    run, text = run_script(prog, SCRIPT.format(p=prog), "4", str(out), "reuse")
    tids = worker_tids(out)
    # The program did make tids repeat (else this test would prove nothing).
    assert len(set(tids)) < len(tids)
    lines = text.splitlines()
    checks = [line for line in lines if line.startswith("check")]
    sets = [line for line in lines if line.startswith("set")]
    assert checks == [f"check {t} 0" for t in tids]
    # Within one thread the variable is there: each worker set i + 1.
    assert sets == [f"set {t} {i + 1}" for i, t in enumerate(tids)]
    assert not set(tids) & set(run.support.tls)


@pytest.mark.timeout(60)
def test_the_thread_local_table_holds_no_exited_thread(prog, tmp_path) -> None:
    out = tmp_path / "tids"
    run, _ = run_script(prog, SCRIPT.format(p=prog), "20", str(out))
    tids = worker_tids(out)
    assert len(tids) == 20
    # 20 threads stay below the size at which the support prunes dead threads itself:
    # only the exit reports can have emptied the table.
    assert run.support.tls_prune_at > 20
    assert not set(tids) & set(run.support.tls)


def test_resolve_is_what_the_script_uses(prog) -> None:
    # Guards the fixture: the probed functions exist as separate symbols (not inlined).
    assert resolve_uprobe(str(prog), "more_check")
    assert resolve_uprobe(str(prog), "more_set")
