"""Signals, foreign traps, removal races, deferral order and fork following."""

from __future__ import annotations

import collections
import re

import pytest
from programs.rt_support import Spawned, placement, uninstrumented

from runtime.errors import PlacementError

pytestmark = pytest.mark.timeout(60)


def test_signals_and_the_programs_own_traps_pass_through(builder, reaper, tmp_path):
    prog = builder.build("rt_signals.c", "-O1")
    run = Spawned([str(prog)], tmp_path, reaper)
    hits = collections.Counter()
    run.session.add_probe(placement(prog, "work"), lambda c: hits.update(["work"]))
    # The nop right after the program's own int3: our trap follows theirs.
    run.session.add_probe(placement(prog, "own_trap", offset=1), lambda c: hits.update(["nop"]))
    assert run.run().code == 0
    assert run.output() == uninstrumented([str(prog)]).stdout == "sum=55 usr1=10 traps=20\n"
    assert hits == {"work": 10, "nop": 10}


def test_site_holding_an_int3_is_refused(builder, reaper, tmp_path):
    prog = builder.build("rt_signals.c", "-O1")
    run = Spawned([str(prog)], tmp_path, reaper)
    with pytest.raises(PlacementError) as e:
        run.session.add_probe(placement(prog, "own_trap"), lambda c: None)
    assert "int3" in e.value.message and "\n" not in e.value.message
    assert run.run().code == 0


def test_remove_probe_while_running(builder, reaper, tmp_path):
    prog = builder.build("rt_threads.c", "-O1", "-pthread")
    run = Spawned([str(prog), "20000"], tmp_path, reaper)
    hits = [0]

    def count_then_remove(ctx):
        hits[0] += 1
        if hits[0] == 5000:
            ctx.session.remove_probe(ctx.probe)

    run.session.add_probe(placement(prog, "work"), count_then_remove)
    assert run.run().code == 0
    # Other threads may have trapped before the int3 went: they are restarted, not counted.
    assert hits[0] == 5000
    assert sorted(line.split()[1:] for line in run.output().splitlines()) == [["20000", "200010000"]] * 8


def test_deferred_work_runs_in_hit_order_and_sync_waits(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned([str(prog), "2000"], tmp_path, reaper)
    order: list[int] = []
    states: list[str] = []

    def deferred(ctx):
        i = ctx.arg(0)
        ctx.defer(lambda: order.append(i))

    def sync(ctx):
        path = f"/proc/{ctx.pid}/task/{ctx.tid}/stat"

        def effect():
            # Runs on the effect thread while the hit thread is still held stopped.
            with open(path) as f:
                states.append(f.read().rsplit(") ", 1)[1][0])

        ctx.defer(effect)

    run.session.add_probe(placement(prog, "work"), deferred)
    run.session.add_probe(placement(prog, "work"), sync, sync=True, label="sync")
    assert run.run().code == 0
    assert order == list(range(2000))
    assert states == ["t"] * 2000


def test_set_reg_in_a_sync_probe_changes_the_program(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned([str(prog), "10"], tmp_path, reaper)
    run.session.add_probe(placement(prog, "work"), lambda c: c.set_reg("rdi", 0), sync=True)
    assert run.run().code == 0
    assert run.output() == "sum=10\n"  # work(0) == 1, ten times


@pytest.mark.parametrize("follow", [True, False])
def test_fork_children(builder, reaper, tmp_path, follow):
    from runtime.session import Session

    prog = builder.build("rt_fork.c", "-O1")
    out = open(tmp_path / "out.txt", "w")
    session = Session.spawn([str(prog)], stdout=out, follow_forks=follow)
    reaper.add(session.pid)
    by_pid = collections.Counter()
    session.add_probe(placement(prog, "work"), lambda c: by_pid.update([c.pid]))
    assert session.run().code == 0
    out.close()
    text = (tmp_path / "out.txt").read_text()
    child = int(re.search(r"child (\d+) sum=49800", text).group(1))
    assert re.search(rf"parent {session.pid} sum=24850 child=0", text)
    expected = {session.pid: 300, child: 300} if follow else {session.pid: 300}
    assert dict(by_pid) == expected


@pytest.mark.parametrize("follow", [True, False])
def test_system_vfork_and_exec_children(builder, reaper, tmp_path, follow):
    from runtime.session import Session

    prog = builder.build("rt_system.c", "-O1")
    out = open(tmp_path / "out.txt", "w")
    session = Session.spawn([str(prog)], stdout=out, follow_forks=follow)
    reaper.add(session.pid)
    hits = collections.Counter()
    session.add_probe(placement(prog, "work"), lambda c: hits.update([c.pid]))
    assert session.run().code == 0
    out.close()
    assert (tmp_path / "out.txt").read_text() == "sum=15 codes=15\n"
    assert dict(hits) == {session.pid: 5}


def test_job_control_stop_and_continue_while_probed(builder, reaper, tmp_path):
    import os
    import signal
    import threading

    from runtime.session import Session

    prog = builder.build("rt_count.c", "-O1")
    session = Session.spawn([str(prog), "20000"], stdout=open(tmp_path / "out", "w"))
    reaper.add(session.pid)
    hits = [0]
    seen_stopped = threading.Event()

    def resume_when_stopped(pid):
        # Wait for the engine to see the group-stop (it then PTRACE_LISTENs), then SIGCONT.
        while not session.engine.threads[pid].group_stopped:
            pass
        seen_stopped.set()
        os.kill(pid, signal.SIGCONT)

    def count(ctx):
        hits[0] += 1
        if hits[0] == 1000:
            os.kill(ctx.pid, signal.SIGSTOP)
            threading.Thread(target=resume_when_stopped, args=(ctx.pid,)).start()

    session.add_probe(placement(prog, "work"), count)
    assert session.run().code == 0
    assert seen_stopped.is_set() and hits[0] == 20000
    assert (tmp_path / "out").read_text() == "sum=599990000\n"


def test_spawned_program_has_default_sigpipe(tmp_path):
    import os

    from runtime.session import Session

    r, w = os.pipe()
    session = Session.spawn(["sh", "-c", "yes | head -n 2; grep SigIgn /proc/self/status"], stdout=w)
    os.close(w)
    assert session.run().code == 0
    with os.fdopen(r) as f:
        assert f.read() == "y\ny\nSigIgn:\t0000000000000000\n"
