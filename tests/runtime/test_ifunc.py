"""runtime.ifunc: the implementation an IFUNC resolved to, read from a relocated process's
GOT slots (a running `sleep`), and from the tracer's own process for the same libc file."""

from __future__ import annotations

import os
import subprocess

from runtime.elfsyms import ElfFile
from runtime.ifunc import implementation
from runtime.procmaps import read_maps


def _libc_of(pid: int) -> ElfFile:
    """libc as mapped in `pid`, once the child has exec'd `sleep` and ld.so mapped libc
    (it blocks in nanosleep long after that; the loop only waits for the exec)."""
    while True:
        if os.readlink(f"/proc/{pid}/exe").endswith("/sleep"):
            paths = [m.path for m in read_maps(pid) if "/libc.so" in m.path]
            if paths and _in_nanosleep(pid):
                return ElfFile.open(paths[0])
        os.sched_yield()


def _in_nanosleep(pid: int) -> bool:
    with open(f"/proc/{pid}/syscall") as f:
        return f.read().split()[0] in ("35", "230")  # nanosleep, clock_nanosleep


def test_running_process_and_own_process_agree(reaper):
    child = subprocess.Popen(["sleep", "60"])
    reaper.add(child.pid)
    libc = _libc_of(child.pid)
    for name in ("strlen", "memcpy", "strchr"):
        sym = next(s for s in libc.functions_named(name) if s.kind == "ifunc")
        in_target = implementation(libc, sym, child.pid)
        assert in_target is not None and in_target != sym.vaddr
        assert libc.executable_segment(in_target) is not None
        assert implementation(libc, sym, None) == in_target
        hit = libc.symbolize(in_target)
        if hit is not None:  # with libc's symbols (libc6-dbg): an implementation's name
            assert hit[1] == 0 and name.strip("_") in hit[0] and hit[0] != name
