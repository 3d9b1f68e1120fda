"""Attaching through the library API to processes that cannot be traced or that vanish
while we attach: each case is a UprobeError with one line, and nothing is left behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from runtime.errors import TargetError, TracePermissionError, UprobeError
from runtime.session import Session

pytestmark = pytest.mark.timeout(60)


def test_process_exiting_during_attach(reaper):
    # A race, tried many times: whichever side wins, the outcome is a clean end or one
    # of the "gone" errors, never another exception and never a process left stopped.
    outcomes = set()
    for _ in range(40):
        proc = subprocess.Popen(["true"])
        reaper.add(proc.pid)
        try:
            session = Session.attach(proc.pid)
        except UprobeError as e:
            assert "\n" not in e.message
            assert isinstance(e, TargetError), e.message
            assert e.message in (f"no process with pid {proc.pid}",
                                 f"process {proc.pid} has exited",
                                 f"process {proc.pid} exited while attaching",
                                 f"process {proc.pid} ran a new program while attaching; "
                                 "try again"), e.message
            outcomes.add("refused")
        else:
            status = session.run()
            assert not status.detached and status.code == 0, status
            outcomes.add("traced")
        proc.wait(timeout=30)
    assert outcomes


def test_zombie_is_reported_as_exited(reaper):
    proc = subprocess.Popen(["true"])
    reaper.add(proc.pid)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    with pytest.raises(TargetError) as e:
        Session.attach(proc.pid)
    assert e.value.message == f"process {proc.pid} has exited"


def test_traced_by_another_tracer(builder, reaper):
    holder = subprocess.Popen([str(builder.build("proc_traced.c", "-O1"))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reaper.add(holder.pid)
    child = reaper.add(int(holder.stdout.readline().split()[1]))
    with pytest.raises(TracePermissionError) as e:
        Session.attach(child)
    assert e.value.message == (f"cannot trace pid {child}: it is already traced by pid "
                               f"{holder.pid} (a debugger or another tracer)")
    holder.communicate(input="", timeout=30)
    assert holder.returncode == 0
