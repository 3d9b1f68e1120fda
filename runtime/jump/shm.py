"""The shared area of the jump path: one memfd mapped in the target and in the tracer.

The target is made to create it: `memfd_create`, `ftruncate` and `mmap(MAP_SHARED |
MAP_POPULATE)` run as syscalls injected into one stopped thread (runtime/inject.py's
remote_syscall), then its descriptor is closed again so the program never sees it. Before
that close the tracer takes a duplicate with pidfd_getfd and maps the same pages, so maps,
counters and the event ring are read without stopping the target. MAP_POPULATE faults every
page in at creation, while only that one thread is stopped: first-touch faults inside hits
cost 5-10x a hit (DESIGN.md), and faulting them inside a stop of every thread made patching
pause for up to a second.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from dataclasses import dataclass

from runtime.errors import TargetError
from runtime.inject import remote_syscall
from runtime.memory import ProcessMemory

SYS_CLOSE = 3
SYS_MMAP = 9
SYS_FTRUNCATE = 77
SYS_MEMFD_CREATE = 319
SYS_PIDFD_GETFD = 438
MFD_CLOEXEC = 1
PROT_READ = 1
PROT_WRITE = 2
MAP_SHARED = 0x01
MAP_FIXED = 0x10
MAP_POPULATE = 0x8000
NAME = b"uprobe-jump\0"
PAGE = 0x1000

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


@dataclass(eq=False)
class SharedArea:
    """`address`: where the target has the area; `view`: the tracer's mapping of the same
    pages (writable: the tracer raises flags and wakes writers through it)."""

    address: int
    size: int
    view: mmap.mmap

    def close(self) -> None:
        """Unmap the tracer's side; the target keeps its mapping (trampolines may still
        run after detach and must find their counters)."""
        try:
            self.view.close()
        except BufferError:
            pass  # a reader still holds a memoryview: unmapped when it is released


def _remote(tid: int, mem: ProcessMemory, insn: int, nr: int, args: tuple[int, ...],
            pending: list[int], what: str) -> int:
    result, sigs = remote_syscall(tid, insn, nr, args)
    pending += sigs
    if -4096 < result < 0:
        raise TargetError(f"pid {mem.pid}: {what} in the target failed: {os.strerror(-result)}")
    return result


def take_fd(pid: int, fd: int) -> int:
    """A duplicate of the target's descriptor `fd` in the tracer (pidfd_getfd)."""
    pidfd = os.pidfd_open(pid)
    try:
        got = _syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if got < 0:
            err = ctypes.get_errno()
            raise TargetError(f"pid {pid}: cannot take the shared memory descriptor: "
                              f"{os.strerror(err)}")
        return int(got)
    finally:
        os.close(pidfd)


def inject(tid: int, mem: ProcessMemory, syscall_insn: int, scratch: int,
           size: int, at: int = 0) -> tuple[SharedArea, list[int]]:
    """Create and map a shared area of `size` bytes in the target through its stopped
    thread `tid`. `scratch`: target memory where the memfd's name may be written (a free
    slot of an XOL area). `at`: map it exactly there, replacing what is mapped (a fork
    child's copy of its parent's area gets its own pages at the same address, so its
    trampolines need no change). Returns the area and signals that arrived meanwhile."""
    size = (size + PAGE - 1) & ~(PAGE - 1)
    pending: list[int] = []
    mem.write(scratch, NAME)
    fd = _remote(tid, mem, syscall_insn, SYS_MEMFD_CREATE, (scratch, MFD_CLOEXEC), pending,
                 "memfd_create")
    local = -1
    try:
        _remote(tid, mem, syscall_insn, SYS_FTRUNCATE, (fd, size), pending, "ftruncate")
        local = take_fd(mem.pid, fd)
        flags = MAP_SHARED | MAP_POPULATE | (MAP_FIXED if at else 0)
        address = _remote(tid, mem, syscall_insn, SYS_MMAP,
                          (at, size, PROT_READ | PROT_WRITE, flags, fd, 0),
                          pending, "mmap of the shared area")
        view = mmap.mmap(local, size, mmap.MAP_SHARED | MAP_POPULATE,
                         mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        if local >= 0:
            os.close(local)
        _, sigs = remote_syscall(tid, syscall_insn, SYS_CLOSE, (fd,))
        pending += sigs
    return SharedArea(address, size, view), pending
