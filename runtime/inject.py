"""Running a system call inside a stopped thread of the target: the one remote-syscall helper.

The XOL area's `mmap` (runtime/xol.py) and the SIGTRAP disposition guard's `rt_sigaction`
and `rt_sigprocmask` (runtime/trapguard.py) are made this way. A `syscall` instruction
already present in executable memory is borrowed (the vdso has several), so no thread can
run into bytes we patched. The thread's registers are saved, pointed at that instruction
with the call's number and arguments, and restored afterwards.

Two ways to drive the call, chosen by the caller:
- syscall stops (PTRACE_SYSCALL, the default): entry, then exit. No debug trap is raised,
  so this is safe while the program's SIGTRAP handling is fragile (a forced SIGTRAP is
  what resets a blocked or ignored SIGTRAP disposition).
- a single step (`step=True`): for a thread in the delivery stop of a signal it must still
  receive with its siginfo. Syscall stops would make the kernel send that signal anew.
Signals that arrive meanwhile are returned, to be delivered later.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

from runtime import ptrace_ops as pt
from runtime.errors import TargetError
from runtime.memory import ProcessMemory
from runtime.procmaps import Mapping

PTRACE_SYSCALL = 24
SYSCALL_STOP = signal.SIGTRAP | 0x80  # with PTRACE_O_TRACESYSGOOD
SYSCALL_LEN = 2
MAX_STEPS = 64
ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
# -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK
ERESTART_RESTARTBLOCK = -516
RESTART_ERRORS = (-512, -513, -514, ERESTART_RESTARTBLOCK)
NR_RESTART_SYSCALL = 219


def find_syscall_insn(mem: ProcessMemory, maps: list[Mapping]) -> int:
    """Address of a `0f 05` byte pair in executable memory, preferring the vdso."""
    ordered = sorted(maps, key=lambda m: m.path != "[vdso]")
    for m in ordered:
        if not m.executable or m.path == "[vsyscall]":
            continue
        data = mem.read_upto(m.start, min(m.end - m.start, 1 << 22))
        i = data.find(b"\x0f\x05")
        if i >= 0:
            return m.start + i
    raise TargetError(f"pid {mem.pid}: no syscall instruction found to run a system call in")


def remote_syscall(tid: int, insn: int, nr: int, args: tuple[int, ...], *,
                   step: bool = False) -> tuple[int, list[int]]:
    """Run syscall `nr` with `args` in the stopped thread `tid` at the `syscall`
    instruction `insn`. Returns (the signed result, signals to deliver later)."""
    saved = pt.new_regs()
    pt.getregs(tid, pt.regs_address(saved))
    regs = pt.new_regs()
    ctypes.memmove(ctypes.addressof(regs), ctypes.addressof(saved), ctypes.sizeof(regs))
    regs.rax = nr
    # Not "inside a system call": the kernel must not restart the thread's interrupted
    # call in place of ours when it resumes.
    regs.orig_rax = MASK64
    for name, value in zip(ARG_REGS, args, strict=False):
        setattr(regs, name, value & MASK64)
    regs.rip = insn
    pt.setregs(tid, pt.regs_address(regs))
    try:
        pending = _step(tid, insn, regs) if step else _syscall_stops(tid, regs)
    finally:
        _restart_interrupted(saved)
        pt.setregs(tid, pt.regs_address(saved))
    result = regs.rax
    return (result - (1 << 64) if result >> 63 else result), pending


def leave_syscall(tid: int) -> list[int]:
    """Let the stopped thread `tid` run to the exit stop of the system call it is inside
    (at an exec event: execve's return value would otherwise overwrite an injected call's
    number). Returns signals that arrived meanwhile, to deliver later."""
    pending: list[int] = []
    _next_syscall_stop(tid, pending)
    return pending


def _syscall_stops(tid: int, regs: Any) -> list[int]:
    pending: list[int] = []
    for _ in range(2):  # syscall entry, then exit
        _next_syscall_stop(tid, pending)
    pt.getregs(tid, pt.regs_address(regs))
    return pending


def _next_syscall_stop(tid: int, pending: list[int]) -> None:
    """Resume `tid` to its next syscall stop; signals for the program met on the way are
    added to `pending` (delivered later)."""
    while True:
        pt.ptrace(PTRACE_SYSCALL, tid)
        _, status = os.waitpid(tid, pt.WALL)
        if not os.WIFSTOPPED(status):
            raise TargetError(f"thread {tid} exited during an injected system call")
        sig = os.WSTOPSIG(status)
        if sig == SYSCALL_STOP:
            return
        if status >> 16 == 0:
            pending.append(sig)


def _step(tid: int, insn: int, regs: Any) -> list[int]:
    pending: list[int] = []
    for _ in range(MAX_STEPS):
        pt.singlestep(tid)
        _, status = os.waitpid(tid, pt.WALL)
        if not os.WIFSTOPPED(status):
            raise TargetError(f"thread {tid} exited during an injected system call")
        pt.getregs(tid, pt.regs_address(regs))
        sig = os.WSTOPSIG(status)
        if regs.rip == insn + SYSCALL_LEN:
            if sig != signal.SIGTRAP:
                pending.append(sig)
            return pending
        if sig != signal.SIGTRAP and status >> 16 == 0:
            # A signal arrived before the syscall ran: keep it for later and step again.
            pending.append(sig)
    raise TargetError(f"thread {tid} did not complete the injected system call")


def _restart_interrupted(regs: Any) -> None:
    """A thread stopped inside an interrupted system call would have it restarted by the
    kernel on its way back to user mode; leaving from our call it no longer is, so do
    what the kernel would (arch_do_signal_or_restart, no handler run)."""
    orig = regs.orig_rax
    err = regs.rax - (1 << 64)
    if orig >> 63 or err not in RESTART_ERRORS:
        return
    regs.rax = NR_RESTART_SYSCALL if err == ERESTART_RESTARTBLOCK else orig
    regs.rip -= SYSCALL_LEN
