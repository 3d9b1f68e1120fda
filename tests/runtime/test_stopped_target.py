"""Attaching to a process stopped by job control (SIGSTOP) leaves it stopped: injecting
our code through one of its threads must not let that thread run. Once continued, it is
traced like any other."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from programs.rt_support import placement

from runtime.session import Session

pytestmark = pytest.mark.timeout(120)
TICKS_STOPPED = 20  # timer ticks (10 ms) observed while the process must stay stopped


def _states(pid: int) -> set[str]:
    found = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            text = f.read()
        found.add(text[text.rindex(")") + 2])
    return found


def test_stopped_process_stays_stopped_until_continued(builder, reaper):
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    proc = subprocess.Popen([str(prog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == "ready\n"
    os.kill(proc.pid, signal.SIGSTOP)
    os.waitid(os.P_PID, proc.pid, os.WSTOPPED | os.WNOWAIT)
    session = Session.attach(proc.pid)
    hits = []
    session.add_probe(placement(prog, "work"), lambda ctx: hits.append(1) if len(hits) < 500
                      else ctx.session.stop())
    seen: dict[str, object] = {"ticks": 0}

    def tick() -> None:
        seen["ticks"] += 1  # type: ignore[operator]
        if seen["ticks"] == TICKS_STOPPED:
            seen["hits_while_stopped"] = len(hits)
            seen["states"] = _states(proc.pid)
            os.kill(proc.pid, signal.SIGCONT)

    session.add_timer(10_000_000, tick)
    session.run()
    session.detach()
    assert seen["hits_while_stopped"] == 0
    assert seen["states"] <= {"T", "t"}
    assert len(hits) >= 500
    out, _ = proc.communicate(input="", timeout=60)
    assert (out, proc.returncode) == ("ok 1\n", 7)
