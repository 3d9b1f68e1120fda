"""Keeping the program's own SIGTRAP disposition intact across our breakpoint hits.

The kernel reports an int3 with force_sig(SIGTRAP): when the thread has SIGTRAP blocked
(it is running the program's own SIGTRAP handler) or the process ignores SIGTRAP, the
kernel first resets the disposition to SIG_DFL and unblocks SIGTRAP, before the tracer
sees the stop. Dropping our trap's signal does not undo that, and the program's next
SIGTRAP would kill it. So for a process with a SIGTRAP disposition of its own (checked
when tracing starts, and each time we pass it a SIGTRAP) we keep a copy of its sigaction;
after each hit, if the kernel reset it, we put it back with an injected rt_sigaction and
block SIGTRAP again in that thread. Processes that never touch SIGTRAP pay nothing.
"""

from __future__ import annotations

import ctypes
import signal

from runtime import procfs
from runtime import ptrace_ops as pt
from runtime.inject import remote_syscall
from runtime.memory import ProcessMemory
from runtime.xol import XolSpace, syscall_insn

SYS_RT_SIGACTION = 13
SYS_RT_SIGPROCMASK = 14
SIG_BLOCK = 0
SIG_IGN = 1
SIGSET_SIZE = 8
# struct kernel sigaction on x86-64: handler, flags, restorer, mask.
ACTION_SIZE = 32
TRAP_BIT = 1 << (signal.SIGTRAP - 1)
# Scratch space below the red zone of the stopped thread's stack.
SCRATCH_BELOW = 128 + 64
PTRACE_SETSIGINFO = 0x4203
_IGNORED = SIG_IGN.to_bytes(8, "little") + bytes(ACTION_SIZE - 8)


def trap_disposition(tid: int | str) -> tuple[bool, bool]:
    """(caught, ignored) for SIGTRAP in the process of `tid` (from /proc/TID/status)."""
    fields = procfs.status(tid)
    return (bool(int(fields.get("SigCgt", "0"), 16) & TRAP_BIT),
            bool(int(fields.get("SigIgn", "0"), 16) & TRAP_BIT))


def ignored_action(pid: int) -> bytes | None:
    """SIG_IGN as a sigaction when the process ignores SIGTRAP (the one disposition that
    survives exec and so may be there before our first breakpoint), else None."""
    return _IGNORED if trap_disposition(pid)[1] else None


def scratch(rsp: int) -> int:
    return (rsp - SCRATCH_BELOW) & ~0xF


def read_action(tid: int, mem: ProcessMemory, space: XolSpace, rsp: int,
                delivering: bool) -> tuple[bytes, list[int]]:
    """The process's SIGTRAP sigaction as the stopped thread `tid` sees it. Returns
    (action, signals to deliver later). `delivering`: the thread is in the delivery stop
    of a SIGTRAP that it must still receive, with its siginfo."""
    caught, ignored = trap_disposition(tid)
    if ignored:
        return _IGNORED, []
    if not caught:
        return bytes(ACTION_SIZE), []
    buf = scratch(rsp)
    args = (signal.SIGTRAP, 0, buf, SIGSET_SIZE)
    insn = syscall_insn(mem, space)
    if not delivering:
        _, pending = remote_syscall(tid, insn, SYS_RT_SIGACTION, args)
        return mem.read(buf, ACTION_SIZE), pending
    # Syscall stops cannot hand on a signal with its siginfo (the kernel sends it anew),
    # so here the call is single-stepped: safe, as SIGTRAP is neither blocked nor ignored
    # in a thread about to receive it; the stop's siginfo is put back afterwards.
    info = ctypes.create_string_buffer(128)
    has_info = pt.fast_ptrace(pt.PTRACE_GETSIGINFO, tid, 0, ctypes.addressof(info)) == 0
    _, pending = remote_syscall(tid, insn, SYS_RT_SIGACTION, args, step=True)
    if has_info:
        pt.fast_ptrace(PTRACE_SETSIGINFO, tid, 0, ctypes.addressof(info))
    return mem.read(buf, ACTION_SIZE), pending


def restore_if_reset(tid: int, mem: ProcessMemory, space: XolSpace, rsp: int,
                     action: bytes) -> list[int]:
    """After a hit: if the kernel reset SIGTRAP to SIG_DFL, put `action` back and block
    SIGTRAP again in `tid` (a handler was running, or SIGTRAP was blocked: the reset only
    happens then). Returns signals to deliver later."""
    handler = int.from_bytes(action[:8], "little")
    if handler == 0:
        return []  # SIG_DFL: nothing the kernel could have changed
    caught, ignored = trap_disposition(tid)
    if caught or ignored:
        return []
    insn = syscall_insn(mem, space)
    buf = scratch(rsp)
    mem.write(buf, action)
    _, pending = remote_syscall(tid, insn, SYS_RT_SIGACTION,
                                (signal.SIGTRAP, buf, 0, SIGSET_SIZE))
    if handler != SIG_IGN:
        mem.write(buf, TRAP_BIT.to_bytes(8, "little"))
        _, more = remote_syscall(tid, insn, SYS_RT_SIGPROCMASK,
                                 (SIG_BLOCK, buf, 0, SIGSET_SIZE))
        pending += more
    return pending
