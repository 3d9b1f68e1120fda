"""Starting a program traced: fork, seize the child before it execs, wait for its exec.

The child waits on a pipe until the tracer has PTRACE_SEIZEd it (without EXITKILL: a
program started by uprobe outlives a killed tracer, runtime/lifeline.py), then execs; a failed exec reports its error through a close-on-exec pipe. Session.spawn then
holds the program before any code of its image runs (runtime/session.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from typing import IO, Any

from runtime import ptrace_ops as pt
from runtime.engine import TRACE_OPTIONS
from runtime.errors import TargetError, UprobeError

StdStream = int | IO[Any] | None


def start_traced(argv: Sequence[str], env: dict[str, str] | None, cwd: str | None,
                 streams: Sequence[StdStream]) -> int:
    """Fork and exec `argv`, seized from before the exec; returns its pid, stopped at
    its exec event. `streams`: stdin, stdout, stderr (None: inherited)."""
    if not argv:
        raise TargetError("no command to run")
    fds = [_fd(s) for s in streams]
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        _exec_child(argv, env, cwd, fds, go_r, err_w)
    os.close(go_r)
    os.close(err_w)
    try:
        pt.seize(pid, TRACE_OPTIONS)
    except BaseException:
        kill(pid)
        raise
    finally:
        os.write(go_w, b"g")
        os.close(go_w)
    try:
        _wait_exec(pid, err_r)
    except BaseException:
        kill(pid)
        raise
    finally:
        os.close(err_r)
    return pid


def kill(pid: int) -> None:
    """SIGKILL a child we started and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, pt.WALL)


def pin_tracer(cpu: int) -> None:
    """Pin the calling (tracer) thread to `cpu`: a hit then switches between two tasks on
    one CPU instead of waking the tracer elsewhere. Threads started later inherit it."""
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        cpus = ",".join(str(c) for c in sorted(allowed))
        raise UprobeError(f"cannot pin to CPU {cpu}: this process may run on CPUs {cpus}")
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as e:
        raise UprobeError(f"cannot pin to CPU {cpu}: {e.strerror}") from None


def _fd(stream: StdStream) -> int | None:
    if stream is None or isinstance(stream, int):
        return stream
    return stream.fileno()


def _exec_child(argv: Sequence[str], env: dict[str, str] | None, cwd: str | None,
                fds: list[int | None], go: int, err: int) -> None:  # pragma: no cover - child
    """In the forked child: wait until the tracer has seized us, then exec."""
    code = 127
    try:
        # Python ignores SIGPIPE and SIGXFSZ and the exec would keep that: undo it, and
        # any signal mask of the spawning thread, so the program runs as from a shell.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.read(go, 1)
        for target, fd in enumerate(fds):
            if fd is not None and fd != target:
                os.dup2(fd, target)
        if cwd:
            os.chdir(cwd)
        if env is None:
            os.execvp(argv[0], list(argv))
        os.execvpe(argv[0], list(argv), env)
    except OSError as e:
        os.write(err, f"cannot run {argv[0]}: {e.strerror}".encode())
    finally:
        os._exit(code)


def _wait_exec(pid: int, err_r: int) -> None:
    """Wait for the child's exec event; a failed exec reports through `err_r`."""
    while True:
        _, status = os.waitpid(pid, pt.WALL)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            msg = os.read(err_r, 4096).decode(errors="replace")
            raise TargetError(msg or f"the program exited before it started ({status:#x})")
        if status >> 16 == pt.EVENT_EXEC:
            return
        sig = (status >> 8) & 0xFF
        # Signals before exec go on to the child; event stops just continue.
        pt.cont(pid, sig if status >> 16 == 0 else 0)
