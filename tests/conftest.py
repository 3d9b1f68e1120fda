"""Shared fixtures: building the test programs and cleaning up the processes a test starts."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from programs.build import Builder  # noqa: E402


@pytest.fixture(scope="session")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """`builder.build("prog.c", "-O1")` returns the path of the compiled program."""
    return Builder(tmp_path_factory.mktemp("programs"))


class Reaper:
    """Remembers the pids a test started and kills whichever are still alive at teardown."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def add(self, pid: int) -> int:
        self.pids.append(pid)
        return pid

    def reap(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


@pytest.fixture
def reaper():
    r = Reaper()
    yield r
    r.reap()
