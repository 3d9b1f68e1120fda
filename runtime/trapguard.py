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
import os
import signal
from typing import Any

from runtime import ptrace_ops as pt
from runtime import xol
from runtime.errors import TargetError
from runtime.memory import ProcessMemory
from runtime.procmaps import read_maps
from runtime.xol import XolSpace

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
PTRACE_SYSCALL = 24
# -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK
ERESTART_RESTARTBLOCK = -516
RESTART_ERRORS = (-512, -513, -514, ERESTART_RESTARTBLOCK)
NR_RESTART_SYSCALL = 219
_IGNORED = SIG_IGN.to_bytes(8, "little") + bytes(ACTION_SIZE - 8)
SYSCALL_STOP = signal.SIGTRAP | 0x80


def trap_disposition(tid: int | str) -> tuple[bool, bool]:
    """(caught, ignored) for SIGTRAP in the process of `tid` (from /proc/TID/status)."""
    caught = ignored = False
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    ignored = bool(int(line.split()[1], 16) & TRAP_BIT)
                elif line.startswith("SigCgt:"):
                    caught = bool(int(line.split()[1], 16) & TRAP_BIT)
                    break
    except OSError:
        pass
    return caught, ignored


def remote_syscall(tid: int, insn: int, nr: int, args: tuple[int, ...]) -> tuple[int, list[int]]:
    """Run syscall `nr` in the stopped thread `tid` at the `syscall` instruction `insn`,
    driven by syscall stops: a single step would end in a forced SIGTRAP, and that is what
    resets the disposition we are protecting. Registers are restored; returns (result,
    signals that arrived meanwhile, to deliver later)."""
    saved = pt.new_regs()
    pt.getregs(tid, pt.regs_address(saved))
    regs = pt.new_regs()
    ctypes.memmove(ctypes.addressof(regs), ctypes.addressof(saved), ctypes.sizeof(regs))
    regs.rax = nr
    for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args, strict=False):
        setattr(regs, name, value & 0xFFFF_FFFF_FFFF_FFFF)
    regs.rip = insn
    pt.setregs(tid, pt.regs_address(regs))
    pending: list[int] = []
    stops = 0
    try:
        while stops < 2:  # syscall entry, then exit
            pt.ptrace(PTRACE_SYSCALL, tid)
            _, status = os.waitpid(tid, pt.WALL)
            if not os.WIFSTOPPED(status):
                raise TargetError(f"thread {tid} exited during an injected system call")
            sig = os.WSTOPSIG(status)
            if sig == SYSCALL_STOP:
                stops += 1
            elif status >> 16 == 0:
                pending.append(sig)  # a signal for the program: deliver it later
        pt.getregs(tid, pt.regs_address(regs))
    finally:
        _restart_interrupted(saved)
        pt.setregs(tid, pt.regs_address(saved))
    result = regs.rax
    return (result - (1 << 64) if result >> 63 else result), pending


def finish_syscall(tid: int) -> list[int]:
    """Let the stopped thread `tid` run to the exit stop of the system call it is inside
    (an exec event stop); returns signals that arrived meanwhile, to deliver later."""
    pending: list[int] = []
    while True:
        pt.ptrace(PTRACE_SYSCALL, tid)
        _, status = os.waitpid(tid, pt.WALL)
        if not os.WIFSTOPPED(status):
            raise TargetError(f"thread {tid} exited while leaving a system call")
        sig = os.WSTOPSIG(status)
        if sig == SYSCALL_STOP:
            return pending
        if status >> 16 == 0:
            pending.append(sig)


def ignored_action(pid: int) -> bytes | None:
    """SIG_IGN as a sigaction when the process ignores SIGTRAP (the one disposition that
    survives exec and so may be there before our first breakpoint), else None."""
    return _IGNORED if trap_disposition(pid)[1] else None


def _restart_interrupted(regs: Any) -> None:
    """A thread stopped inside an interrupted system call would have it restarted by the
    kernel on its way back to user mode; leaving from our syscall's exit stop it no longer
    is, so do what the kernel would (arch_do_signal_or_restart, no handler run)."""
    orig = regs.orig_rax
    err = regs.rax - (1 << 64)
    if orig >> 63 or err not in RESTART_ERRORS:
        return
    regs.rax = NR_RESTART_SYSCALL if err == ERESTART_RESTARTBLOCK else orig
    regs.rip -= 2


def scratch(rsp: int) -> int:
    return (rsp - SCRATCH_BELOW) & ~0xF


def syscall_insn(mem: ProcessMemory, space: XolSpace) -> int:
    if not space.syscall_insn:
        space.syscall_insn = xol.find_syscall_insn(mem, read_maps(mem.pid))
    return space.syscall_insn


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
    _, pending = xol.remote_syscall(tid, mem, insn, SYS_RT_SIGACTION, args)
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
