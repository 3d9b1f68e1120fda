"""Detach leaves the target exactly as it was, and attach/detach cycles keep it healthy."""

from __future__ import annotations

import subprocess

import pytest
from programs.rt_support import placement
from programs.textsnap import executable_text

from runtime.session import Session

pytestmark = pytest.mark.timeout(180)


def _start_spinner(builder, reaper) -> subprocess.Popen:
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    proc = subprocess.Popen([str(prog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == "ready\n"
    return proc


def _finish(proc: subprocess.Popen) -> tuple[str, int]:
    out, _ = proc.communicate(input="", timeout=60)
    return out, proc.returncode




def _probe_until(session: Session, prog, hits_wanted: int) -> dict[str, int]:
    counts = {"work": 0, "step": 0, "step-ret": 0, "pending-at-stop": 0}
    stopped: list[bool] = []

    def make(name):
        def handler(ctx):
            counts[name] += 1
            # Stop inside step(): the thread's own step entry is then surely pending.
            if name == "work" and counts[name] == hits_wanted and not stopped:
                # Return addresses the detach has to put back (return handlers still run
                # for trampolines hit while detaching: count only the first stop).
                stopped.append(True)
                counts["pending-at-stop"] = sum(
                    len(t.returns) for t in ctx.session.engine.threads.values())
                ctx.session.stop()
        return handler

    session.add_probe(placement(prog, "work"), make("work"))
    session.add_probe(placement(prog, "step"), make("step"))
    session.add_probe(placement(prog, "step"), make("step-ret"), kind="return")
    return counts


def test_detach_leaves_text_identical_and_output_unchanged(builder, reaper):
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    proc = _start_spinner(builder, reaper)
    before = executable_text(proc.pid, anonymous=True)
    session = Session.attach(proc.pid)
    counts = _probe_until(session, prog, 2000)
    status = session.run()
    assert status.detached and status.reason == "detached: stop requested"
    assert min(counts.values()) >= 1 and counts["work"] >= 2000
    after = executable_text(proc.pid, anonymous=True)
    for key, data in before.items():
        assert after[key] == data, f"text changed in {key}"
    # The only new executable mappings are our XOL areas (anonymous, left mapped).
    assert all(path == "" for (_s, _e, path) in set(after) - set(before))
    baseline = subprocess.run([str(prog)], input="", capture_output=True, text=True, timeout=60)
    out, code = _finish(proc)
    assert ("ready\n" + out, code) == (baseline.stdout, baseline.returncode) == ("ready\nok 1\n", 7)


def test_attach_detach_cycles_on_busy_threads(builder, reaper):
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    proc = _start_spinner(builder, reaper)
    before = executable_text(proc.pid)
    pending = 0
    for _ in range(20):
        session = Session.attach(proc.pid)
        counts = _probe_until(session, prog, 200)
        assert session.run().detached
        assert counts["step"] >= 1
        pending += counts["pending-at-stop"]
        session.detach()
    assert pending > 0
    after = executable_text(proc.pid)
    assert all(after[key] == data for key, data in before.items())
    assert _finish(proc) == ("ok 1\n", 7)
