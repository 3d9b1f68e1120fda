"""Signals as the program handles them, probes inside signal handlers, and job control
seen by the program's real parent while we trace the child."""

from __future__ import annotations

import collections
import signal

import pytest
from programs.rt_support import Spawned, placement, uninstrumented

pytestmark = pytest.mark.timeout(60)


def test_handled_signals_own_traps_and_handler_probes(builder, reaper, tmp_path):
    prog = builder.build("proc_signals.c", "-O1")
    run = Spawned([str(prog), "25"], tmp_path, reaper)
    sigs = collections.Counter()
    works = [0]
    run.session.add_probe(placement(prog, "in_handler"), lambda c: sigs.update([c.arg(0)]))
    run.session.add_probe(placement(prog, "work"),
                          lambda c: works.__setitem__(0, works[0] + 1))
    status = run.run()
    baseline = uninstrumented([str(prog), "25"])
    assert (status.code, baseline.returncode) == (3, 3)
    assert run.output() == baseline.stdout == (
        "sum=325 usr1=25 alrm=25 traps=50 handled=850\n")
    # One handler run per signal: SIGUSR1 and SIGALRM once a round, SIGTRAP twice.
    assert dict(sigs) == {signal.SIGUSR1: 25, signal.SIGALRM: 25, signal.SIGTRAP: 50}
    assert works[0] == 25


@pytest.mark.parametrize("follow", [True, False])
def test_parent_sees_stop_and_continue_of_a_traced_child(builder, reaper, tmp_path, follow):
    from runtime.session import Session

    prog = builder.build("proc_jobctl.c", "-O1")
    out = open(tmp_path / "out.txt", "w")  # noqa: SIM115
    session = Session.spawn([str(prog), "500"], stdout=out, follow_forks=follow)
    reaper.add(session.pid)
    hits = collections.Counter()
    session.add_probe(placement(prog, "work"), lambda c: hits.update([c.pid]))
    assert session.run().code == 0
    out.close()
    text = (tmp_path / "out.txt").read_text()
    assert text == uninstrumented([str(prog), "500"]).stdout == (
        "parent saw: stopped by 19\nparent saw: continued\n"
        "parent saw: stopped by 20\nparent saw: continued\n"
        "child sum=375750\nparent saw: exited 5\n")
    child_hits = {pid: n for pid, n in hits.items() if pid != session.pid}
    assert list(child_hits.values()) == ([1500] if follow else [])
    assert hits[session.pid] == 0


def test_sigtrap_ignored_from_before_exec_stays_ignored(builder, reaper, tmp_path):
    # Each hit on work() would reset the ignored SIGTRAP to its default (the kernel does
    # that when it reports an int3 while SIGTRAP is ignored); the next raise() would kill.
    prog = builder.build("proc_signals.c", "-O1")
    argv = ["sh", "-c", f'trap "" TRAP; exec {prog} ignored 30']
    run = Spawned(argv, tmp_path, reaper)
    hits = [0]
    run.session.add_probe(placement(prog, "work"), lambda c: hits.__setitem__(0, hits[0] + 1))
    status = run.run()
    assert (status.code, run.output()) == (4, "sum=465\n")
    assert uninstrumented(argv).stdout == "sum=465\n"
    assert hits[0] == 30


def test_sigtrap_handler_and_mask_found_at_attach(builder, reaper):
    # Attached to a program that already handles SIGTRAP and blocks it around work():
    # each hit there would make the kernel reset the handler and unblock SIGTRAP.
    import subprocess

    from runtime.session import Session

    prog = builder.build("proc_signals.c", "-O1")
    proc = subprocess.Popen([str(prog), "blocked", "40"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == "ready\n"
    session = Session.attach(proc.pid)
    hits = [0]
    session.add_probe(placement(prog, "work"), lambda c: hits.__setitem__(0, hits[0] + 1))
    proc.stdin.write("go\n")
    proc.stdin.flush()
    status = session.run()
    out, _ = proc.communicate(timeout=60)
    assert (status.detached, proc.returncode) == (False, 0)
    assert out == "sum=820 traps=40 held=40\n"
    assert hits[0] == 40
