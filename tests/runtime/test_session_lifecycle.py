"""How sessions end: exit, kill, stop() from a timer, errors in handlers, bad targets."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from programs.rt_support import Spawned, placement

from runtime.errors import PlacementError, TargetError, UprobeError
from runtime.session import Session

pytestmark = pytest.mark.timeout(60)


def test_target_killed_while_probed(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned([str(prog), "100000000"], tmp_path, reaper)
    hits = [0]

    def kill_at_1000(ctx):
        hits[0] += 1
        if hits[0] == 1000:
            os.kill(ctx.pid, signal.SIGKILL)

    run.session.add_probe(placement(prog, "work"), kill_at_1000)
    status = run.run()
    assert (status.code, status.signal, status.detached) == (None, signal.SIGKILL, False)
    assert status.reason == "target killed by SIGKILL"
    assert hits[0] == 1000


def test_target_killed_from_another_thread(builder, reaper, tmp_path):
    prog = builder.build("rt_threads.c", "-O1", "-pthread")
    run = Spawned([str(prog), "100000000"], tmp_path, reaper)
    started = threading.Event()
    run.session.add_probe(placement(prog, "work"), lambda ctx: started.set())
    killer = threading.Thread(target=lambda: started.wait() and os.kill(run.session.pid, signal.SIGKILL))
    killer.start()
    status = run.run()
    killer.join()
    assert status.reason == "target killed by SIGKILL"


def test_exit_status_reported(builder, reaper, tmp_path):
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    stdin = open(os.devnull)  # EOF at once: the program ends with status 7
    session = Session.spawn([str(prog)], stdin=stdin, stdout=open(os.devnull, "w"))
    reaper.add(session.pid)
    session.add_probe(placement(prog, "work"), lambda ctx: None)
    status = session.run()
    assert (status.code, status.reason) == (7, "target exited with status 7")


def test_timer_runs_in_tracer_and_stop_detaches(builder, reaper, tmp_path):
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    r, w = os.pipe()
    session = Session.spawn([str(prog)], stdin=r, stdout=open(os.devnull, "w"))
    os.close(r)
    reaper.add(session.pid)
    ticks = []

    def tick():
        ticks.append(threading.get_native_id())
        if len(ticks) == 3:
            session.stop()

    session.add_timer(20_000_000, tick)
    status = session.run()
    assert status.detached and status.reason == "detached: stop requested"
    assert ticks == [threading.get_native_id()] * 3
    # Detached, the program runs on and ends normally once its stdin closes.
    os.close(w)
    _, st = os.waitpid(session.pid, 0)
    assert os.WEXITSTATUS(st) == 7


def test_stop_from_effect_thread(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned([str(prog), "100000000"], tmp_path, reaper)
    run.session.add_probe(placement(prog, "work"), lambda ctx: ctx.defer(ctx.session.stop))
    status = run.run()
    assert status.detached
    os.kill(run.session.pid, signal.SIGKILL)


def test_handler_exception_detaches_then_reraises(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned([str(prog), "1000"], tmp_path, reaper)

    def boom(ctx):
        raise ValueError("handler failed")

    run.session.add_probe(placement(prog, "work"), boom)
    with pytest.raises(ValueError, match="handler failed"):
        run.session.run()
    # The program was let go intact and finishes on its own.
    _, st = os.waitpid(run.session.pid, 0)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
    assert run.output() == "sum=1499500\n"


def test_spawn_of_missing_program_is_a_one_line_error(tmp_path):
    with pytest.raises(TargetError) as e:
        Session.spawn([str(tmp_path / "nope")])
    assert e.value.message == f"cannot run {tmp_path / 'nope'}: No such file or directory"


def test_attach_to_missing_pid():
    with pytest.raises(TargetError, match="no process with pid"):
        Session.attach(2**22 + 12345)


def test_unknown_probe_kind_and_misplaced_return_probe(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned([str(prog), "10"], tmp_path, reaper)
    with pytest.raises(UprobeError, match="unknown probe kind"):
        run.session.add_probe(placement(prog, "work"), lambda c: None, kind="exit")
    with pytest.raises(PlacementError, match="a return probe must be at the start of work"):
        run.session.add_probe(placement(prog, "work", offset=5), lambda c: None, kind="return")
    assert run.run().code == 0


def test_probe_on_a_program_run_later_by_exec(builder, reaper, tmp_path):
    prog = builder.build("rt_count.c", "-O1")
    run = Spawned(["/bin/sh", "-c", f"exec {prog} 1000"], tmp_path, reaper)
    hits = [0]
    probe = run.session.add_probe(placement(prog, "work"), lambda c: hits.__setitem__(0, hits[0] + 1))
    assert run.session.sites(probe) == 0  # pending: the shell does not map the program
    status = run.run()
    assert status.code == 0 and hits[0] == 1000
    assert run.output() == "sum=1499500\n"


def test_exception_mid_hit_leaves_the_thread_at_a_clean_instruction(builder, reaper, tmp_path):
    # At -O0 work() starts with the 1-byte `push %rbp`: resuming one byte late would
    # skip it and crash the program on return.
    prog = builder.build("rt_count.c", "-O0")
    run = Spawned([str(prog), "1000"], tmp_path, reaper)
    hits = [0]

    def fail_late(ctx):
        hits[0] += 1
        if hits[0] == 500:
            raise KeyError("late")

    run.session.add_probe(placement(prog, "work"), fail_late)
    with pytest.raises(KeyError):
        run.session.run()
    _, st = os.waitpid(run.session.pid, 0)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
    assert run.output() == "sum=1499500\n"


def test_call_soon_adds_a_probe_from_another_thread(builder, reaper, tmp_path):
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    r, w = os.pipe()
    session = Session.spawn([str(prog)], stdin=r, stdout=open(os.devnull, "w"))
    os.close(r)
    reaper.add(session.pid)
    ran_on = []
    hits = [0]

    def count(ctx):
        hits[0] += 1
        if hits[0] == 100:
            ctx.session.stop()

    def add():
        ran_on.append(threading.get_native_id())
        session.add_probe(placement(prog, "work"), count)

    other = threading.Thread(target=session.call_soon, args=(add,))
    other.start()
    other.join()
    status = session.run()
    assert status.detached and hits[0] == 100
    assert ran_on == [threading.get_native_id()]
    os.close(w)
    _, st = os.waitpid(session.pid, 0)
    assert os.WEXITSTATUS(st) == 7
