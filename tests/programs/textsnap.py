"""The executable text of a process, read through /proc/PID/mem: the ground truth for
"detach leaves the target byte-identical"."""

from __future__ import annotations

import os

from runtime.procmaps import read_maps


def executable_text(pid: int, anonymous: bool = False) -> dict[tuple[int, int, str], bytes]:
    """(start, end, path) -> bytes of every file-backed executable mapping of pid, and of
    the anonymous ones (path "") too when asked (where our XOL areas live)."""
    found = {}
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for m in read_maps(pid):
            wanted = bool(m.path) or anonymous
            if m.executable and wanted and not m.path.startswith("["):
                found[(m.start, m.end, m.path)] = os.pread(fd, m.end - m.start, m.start)
    finally:
        os.close(fd)
    return found
