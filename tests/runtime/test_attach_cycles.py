"""100 attach/detach cycles through the library API on a multi-threaded program that the
probes hit constantly: it stays healthy, its text is unchanged and its own checksum holds."""

from __future__ import annotations

import subprocess

import pytest
from programs.rt_support import placement
from programs.textsnap import executable_text

from runtime.session import Session

pytestmark = pytest.mark.timeout(240)

CYCLES = 100




def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(") ", 1)[1][0]


def test_hundred_attach_detach_cycles(builder, reaper):
    # rt_spin: 4 threads call step() -> work() until stdin closes, then each checks its
    # sum against the closed form: "ok 1" and status 7, or "bad" and status 3.
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    proc = subprocess.Popen([str(prog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == "ready\n"
    before = executable_text(proc.pid)
    work, step = placement(prog, "work"), placement(prog, "step")
    pending_total = 0
    tids_seen: set[int] = set()
    for cycle in range(CYCLES):
        session = Session.attach(proc.pid)
        hits = [0]
        pending = [0]

        def on_work(ctx, hits=hits, pending=pending):
            hits[0] += 1
            tids_seen.add(ctx.tid)
            if hits[0] == 25:
                pending[0] = sum(len(t.returns) for t in ctx.session.engine.threads.values())
                ctx.session.stop()

        session.add_probe(work, on_work)
        session.add_probe(step, lambda c: None, kind="return")
        status = session.run()
        assert status.detached, f"cycle {cycle}: {status}"
        assert hits[0] >= 25
        pending_total += pending[0]
        assert _state(proc.pid) in "RS", f"cycle {cycle}: target state {_state(proc.pid)}"
    # Return addresses were pending at many of the stops and were all put back.
    assert pending_total >= CYCLES
    assert len(tids_seen) == 4
    after = executable_text(proc.pid)
    assert after.keys() == before.keys()
    assert all(after[k] == v for k, v in before.items())
    out, _ = proc.communicate(input="", timeout=60)
    assert (out, proc.returncode) == ("ok 1\n", 7)
