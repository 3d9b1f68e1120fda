"""Threads created after attach are traced from their first instruction; threads that
exit (here inside a function with a pending return probe) are forgotten."""

from __future__ import annotations

import collections
import os
import subprocess

import pytest
from programs.rt_support import placement

from runtime.session import Session

pytestmark = pytest.mark.timeout(60)


def test_threads_started_after_attach_and_exiting_with_pending_returns(builder, reaper):
    prog = builder.build("proc_threads_late.c", "-O1", "-pthread")
    proc = subprocess.Popen([str(prog), "2500"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == "ready\n"
    session = Session.attach(proc.pid)
    at_attach = set(os.listdir(f"/proc/{proc.pid}/task"))
    starts = collections.Counter()
    works = collections.Counter()
    leaves = collections.Counter()
    left = []
    at_end = {}

    def on_after_join(ctx):
        engine = ctx.session.engine
        at_end["threads"] = sorted(engine.threads)
        at_end["returns"] = sum(len(t.returns) for t in engine.threads.values())

    session.add_probe(placement(prog, "thread_main"), lambda c: starts.update([c.tid]))
    session.add_probe(placement(prog, "work"), lambda c: works.update([c.tid]))
    session.add_probe(placement(prog, "leave"), lambda c: leaves.update([c.tid]))
    session.add_probe(placement(prog, "leave"), lambda c: left.append(c.tid), kind="return")
    session.add_probe(placement(prog, "after_join"), on_after_join)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    status = session.run()
    out, _ = proc.communicate(timeout=60)
    assert not status.detached
    assert proc.returncode == 0
    assert out == "".join(f"thread {i} sum=3126250\n" for i in range(6)) + "total=18757500\n"
    # Six new threads, each seen from its start routine on, every call counted.
    assert len(starts) == 6 and set(starts.values()) == {1}
    assert not {str(t) for t in starts} & at_attach
    assert works == {tid: 2500 for tid in starts}
    assert leaves == starts and left == []
    # Each thread died inside leave(): its pending return went with it.
    assert at_end == {"threads": [proc.pid], "returns": 0}
