"""Reading /proc: the one place that knows the files' names and formats.

Everything the runtime learns about a process from /proc other than its memory
(runtime/memory.py) comes through here: status fields and signal masks, the thread list,
per-thread stat and comm, the auxiliary vector, the executable, the memory map's text
(parsed by runtime/procmaps.py). Readers of optional facts return an empty value when the
process is gone; `maps_text`, `exe` and `tasks` raise the runtime's errors, because
callers cannot go on without them.
"""

from __future__ import annotations

import os
import signal
import struct

from runtime.errors import TargetError, TracePermissionError

AT_ENTRY = 9


def status(pid: int | str) -> dict[str, str]:
    """/proc/PID/status as {field: value}; {} when the process (or thread) is gone.
    `pid` may be a tid or "self"."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def signal_mask(pid: int | str, field: str) -> int:
    """A signal set of /proc/PID/status (SigPnd, SigBlk, SigIgn, SigCgt, ...); 0 if gone."""
    try:
        return int(status(pid).get(field, "0"), 16)
    except ValueError:
        return 0


def sigtrap_pending(tid: int) -> bool:
    """Whether a SIGTRAP is queued for the thread (an int3 it executed whose stop the
    kernel has not reported yet: interrupt traps are reported before queued signals)."""
    return bool(signal_mask(tid, "SigPnd") & (1 << (signal.SIGTRAP - 1)))


def state(pid: int | str) -> str:
    """The one-letter state (R, S, D, T, t, Z, X, ...); "" when the task is gone."""
    return status(pid).get("State", "")[:1]


def alive(pid: int | str) -> bool:
    """Whether the task exists and is neither a zombie nor dead."""
    return state(pid) not in ("", "Z", "X")


def tracer_of(tid: int) -> int:
    """The pid tracing `tid` (0: none, or gone)."""
    try:
        return int(status(tid).get("TracerPid", "0").split()[0])
    except (ValueError, IndexError):
        return 0


def tasks(pid: int) -> list[int]:
    """The thread ids of process `pid`."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        raise TargetError(f"no process with pid {pid}") from None


def has_task(pid: int, tid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/task/{tid}")


def exists(pid: int) -> bool:
    return os.path.isdir(f"/proc/{pid}/task")


def thread_stat(pid: int, tid: int) -> list[str]:
    """The fields of /proc/PID/task/TID/stat after the command name (field 3 onwards,
    so index i is field i + 3); [] when the thread is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            text = f.read()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def thread_cpu(pid: int, tid: int) -> int:
    """The CPU the thread last ran on (stat field 39); -1 when it is gone."""
    fields = thread_stat(pid, tid)
    try:
        return int(fields[36])
    except (IndexError, ValueError):
        return -1


def comm(pid: int, tid: int | None) -> str:
    """A thread's comm; tid None: the process's (its thread-group leader's)."""
    path = f"/proc/{pid}/comm" if tid is None else f"/proc/{pid}/task/{tid}/comm"
    try:
        with open(path) as f:
            return f.read().rstrip("\n")
    except OSError:
        return ""


def cgroup_id(pid: int) -> int:
    """The id bpftrace's `cgroup` reports: the inode number of the process's cgroup v2
    directory under the cgroup2 mount; 0 without a cgroup2 hierarchy."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            path = next((line[3:].rstrip("\n") for line in f if line.startswith("0::")), None)
        with open("/proc/self/mountinfo") as f:
            mount = next((line.split()[4] for line in f
                          if " - cgroup2 " in line), None)
    except OSError:
        return 0
    if path is None or mount is None:
        return 0
    try:
        return os.stat(mount + path.rstrip("/")).st_ino if path != "/" else os.stat(mount).st_ino
    except OSError:
        return 0


def auxv(pid: int) -> dict[int, int]:
    """The auxiliary vector of `pid` (key -> value)."""
    try:
        with open(f"/proc/{pid}/auxv", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise TargetError(f"no process with pid {pid}") from None
    out: dict[int, int] = {}
    for i in range(0, len(data) - 15, 16):
        key, value = struct.unpack_from("<QQ", data, i)
        if key == 0:
            break
        out[key] = value
    return out


def entry_point(pid: int) -> int:
    """AT_ENTRY: where the program starts after the dynamic linker."""
    entry = auxv(pid).get(AT_ENTRY)
    if entry is None:
        raise TargetError(f"pid {pid}: no AT_ENTRY in the auxiliary vector")
    return entry


def exe(pid: int) -> str:
    """The path of the program `pid` runs (readlink /proc/PID/exe)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        raise TargetError(f"no process with pid {pid}") from None
    except PermissionError:
        raise TracePermissionError(f"cannot inspect pid {pid}: permission denied") from None


def maps_text(pid: int) -> str:
    """/proc/PID/maps as text (runtime/procmaps.py parses it)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except FileNotFoundError:
        raise TargetError(f"no process with pid {pid}") from None
    except PermissionError:
        raise TracePermissionError(
            f"cannot read the memory map of pid {pid}: permission denied") from None
    except ProcessLookupError:
        raise TargetError(f"process {pid} is gone") from None


def kernel_stack(tid: int) -> str | None:
    """/proc/TID/stack: the kernel functions the thread is in (needs CAP_SYS_ADMIN);
    None when it cannot be read."""
    try:
        with open(f"/proc/{tid}/stack") as f:
            return f.read()
    except OSError:
        return None


def ptrace_scope() -> int:
    """kernel.yama.ptrace_scope (0 where Yama is absent)."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0
