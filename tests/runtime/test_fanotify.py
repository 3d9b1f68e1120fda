"""The fanotify binding and the listener on the real kernel: constants from the header,
event parsing, and how the listener sorts real opens (a direct exec, a #! interpreter, a
library open, our own open, a filtered process). Every group is closed in a finally: the
kernel then allows whatever is left, so a failing test stalls nothing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from runtime import fanotify
from runtime.fanotify import FAN_OPEN_EXEC_PERM, FAN_OPEN_PERM, FanotifyGroup, parse_events
from runtime.listener import Listener, Request

HEADER = Path("/usr/include/linux/fanotify.h")
ROOT = Path(__file__).resolve().parents[2]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify needs CAP_SYS_ADMIN")
pytestmark = pytest.mark.timeout(120)


@pytest.mark.skipif(not HEADER.exists(), reason="no kernel headers")
def test_constants_are_the_kernel_headers():
    defines = dict(re.findall(r"#define\s+(FAN\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", HEADER.read_text()))
    names = [n for n in dir(fanotify) if n.startswith("FAN")]
    assert len(names) >= 12
    for name in names:
        if name in defines:
            assert getattr(fanotify, name) == int(defines[name], 0), name
    assert fanotify.FAN_NOFD == -1


def test_parse_events_walks_event_len():
    one = struct.pack("=IBBHQii", 24, 3, 0, 24, FAN_OPEN_PERM, 7, 1234)
    two = struct.pack("=IBBHQii", 24, 3, 0, 24, FAN_OPEN_EXEC_PERM, 8, 99)
    assert parse_events(one + two) == [fanotify.Event(FAN_OPEN_PERM, 7, 1234),
                                       fanotify.Event(FAN_OPEN_EXEC_PERM, 8, 99)]


class Collector:
    """Plays the tracer: keeps the requests; the test answers the events itself."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.arrived = threading.Condition()

    def __call__(self, request: Request) -> None:
        with self.arrived:
            self.requests.append(request)
            self.arrived.notify_all()

    def wait(self, n: int) -> list[Request]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= n, timeout=60)
            return list(self.requests)


def spawn(argv: list[str]) -> int:
    """fork + exec without waiting for the exec (subprocess waits for it to succeed, and
    here the exec waits for our answer)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    return pid


def exit_code(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.fixture
def watched(tmp_path):
    """A copy of /bin/true and a fake library, each marked in one group with a listener."""
    prog = tmp_path / "mytrue"
    shutil.copy("/bin/true", prog)
    lib = tmp_path / "lib.so"
    shutil.copy("/bin/true", lib)
    group = FanotifyGroup()
    collector = Collector()
    listener = Listener(group, collector, threading.get_native_id(),
                        wanted=lambda comm: comm != "unwanted")
    try:
        group.mark(str(prog), FAN_OPEN_EXEC_PERM)
        group.mark(str(lib), FAN_OPEN_PERM)
        listener.start()
        yield prog, lib, group, collector
    finally:
        listener.stop()
        group.close()


@root_only
def test_direct_exec_waits_for_the_tracer(watched, reaper):
    prog, _, group, collector = watched
    child = reaper.add(spawn([str(prog)]))
    (req,) = collector.wait(1)
    assert (req.kind, req.tid, req.tgid) == ("exec", child, child)
    assert req.fd >= 0
    assert os.waitpid(child, os.WNOHANG) == (0, 0)  # held in execve until we answer
    group.allow(req.fd)
    assert exit_code(child) == 0


@root_only
def test_interpreter_open_is_answered_with_a_sigstop_queued(watched, tmp_path, reaper):
    prog, _, _, collector = watched
    script = tmp_path / "s.sh"
    script.write_text(f"#!{prog}\n")
    script.chmod(0o755)
    child = reaper.add(spawn([str(script)]))
    (req,) = collector.wait(1)
    assert (req.kind, req.tid, req.fd) == ("interp", child, -1)
    # Already answered; the queued SIGSTOP stops it before its first instruction.
    waited = os.waitid(os.P_PID, child, os.WSTOPPED)
    assert waited.si_status == signal.SIGSTOP
    os.kill(child, signal.SIGCONT)
    assert exit_code(child) == 0


@root_only
def test_library_opens_own_and_filtered_are_answered_at_once(watched, reaper):
    _, lib, group, collector = watched
    with open(lib, "rb") as f:  # our own open: the listener must not wait for anyone
        assert f.read(4) == b"\x7fELF"
    # A process named "unwanted" (the filter says no): answered without the tracer.
    subprocess.run(["python3", "-c", "import ctypes; ctypes.CDLL(None).prctl(15, b'unwanted', "
                    f"0, 0, 0); open('{lib}', 'rb').read(1)"], timeout=60, check=True)
    wanted = subprocess.Popen(["cat", str(lib)], stdout=subprocess.DEVNULL)
    reaper.add(wanted.pid)
    (req,) = collector.wait(1)
    assert (req.kind, req.tgid, req.comm) == ("open", wanted.pid, "cat")
    group.allow(req.fd)
    assert wanted.wait(timeout=60) == 0
    assert len(collector.requests) == 1


def test_without_cap_sys_admin_the_error_names_it():
    done = subprocess.run(
        ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "python3", "-c",
         "from runtime.fanotify import FanotifyGroup\n"
         "try:\n    FanotifyGroup()\nexcept Exception as e:\n    print(e.message)"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True)
    assert "need CAP_SYS_ADMIN" in done.stdout and "-c CMD" in done.stdout
