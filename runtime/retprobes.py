"""Return probes: the return address swapped for a trampoline, a per-thread stack of
pending returns, and keeping C++ exception unwinding working.

An entry hit replaces [rsp] with the trampoline (an int3 in the XOL area) and pushes
(original return, slot, probes). A trampoline hit pops the entries of the returning frame.
Frames left without returning (longjmp, exceptions) are recognised by their slot lying
below the live stack and dropped, as the kernel's uretprobes do.

C++ unwinding reads return addresses to find each frame's FDE; a trampoline address there
makes _Unwind_RaiseException fail and the program terminate. So the runtime hooks the
unwinder's entry points: when one starts, every pending return address of that thread is
written back (entries "disarmed"); at __cxa_begin_catch the frames below the catching
frame are gone (their entries dropped) and the survivors get their trampolines back.
"""

from __future__ import annotations

import os
from typing import Any

from runtime import lifeline
from runtime.elfsyms import ElfFile
from runtime.errors import TargetError, UprobeError
from runtime.procmaps import Mapping
from runtime.resolve import Placement
from runtime.threads import Process, ReturnInstance, Thread
from runtime.user_bkpt import UserBkpt

# The largest immediate of `ret imm16`: how far below rsp - 8 a returning slot may lie.
RET_IMM_MAX = 0xFFFF
# Entry points that begin walking the stack through return addresses.
UNWIND_START = ("_Unwind_RaiseException", "_Unwind_Resume_or_Rethrow", "_Unwind_ForcedUnwind")
# Called in the catching frame once unwinding is over.
CATCH = ("__cxa_begin_catch",)
# Files that may define those (the unwinder and the C++ runtime, or a static program).
UNWINDER_FILES = ("libgcc_s", "libstdc++", "libc++", "libunwind")


def unwinder_sites(maps: list[Mapping], exe: str) -> list[tuple[Placement, bool]]:
    """Placements of the unwinder hooks in one process: (placement, True) where unwinding
    starts, (placement, False) where a catch begins. Only the unwinder and C++ runtime
    libraries and the program itself (static libgcc_eh) are searched."""
    found: list[tuple[Placement, bool]] = []
    seen: set[tuple[int, int]] = set()
    for m in maps:
        if not m.executable or not m.inode or (m.dev, m.inode) in seen:
            continue
        seen.add((m.dev, m.inode))
        if m.path != exe and not os.path.basename(m.path).startswith(UNWINDER_FILES):
            continue
        try:
            elf = ElfFile.open(m.path)
        except UprobeError:
            continue
        for names, starts in ((UNWIND_START, True), (CATCH, False)):
            for name in names:
                sym = elf.function(name)
                if sym is not None and sym.offset is not None:
                    found.append((Placement(m.path, m.dev, m.inode, sym.offset, name, 0, sym.vaddr), starts))
    return found


def on_unwind_start(th: Thread, regs: Any) -> None:
    disarm(th.proc, th)


def on_catch(th: Thread, regs: Any) -> None:
    after_catch(th.proc, th, regs.rsp)


def on_entry(proc: Process, th: Thread, regs: Any, bp: UserBkpt) -> None:
    """Plant the trampoline for the function being entered at `bp` (rsp holds the slot)."""
    tramp = proc.xol.trampoline
    rsp = regs.rsp
    mem = proc.mem
    orig = mem.read_u64(rsp)
    rets = th.returns
    if orig == tramp:
        # Chained (tail call): the caller's entry owns this slot; share its original.
        while rets and rets[-1].slot < rsp:
            rets.pop()
        owner = next((r for r in reversed(rets) if r.slot == rsp), None)
        if owner is None:
            return
        rets.append(ReturnInstance(owner.orig, rsp, bp.returns))
        return
    # Frames at or below this slot are gone (the new call reuses their stack).
    while rets and rets[-1].slot <= rsp:
        rets.pop()
    _note(proc, rsp, orig)
    mem.write_u64(rsp, tramp)
    rets.append(ReturnInstance(orig, rsp, bp.returns))


def _note(proc: Process, slot: int, orig: int) -> None:
    """Tell the target's lifeline the real return address before the trampoline goes in
    (runtime/lifeline.py); a full cache is rebuilt from every thread's live entries."""
    line = lifeline.of(proc)
    if line is None or line.note_return(proc.mem, slot, orig):
        return
    live = [(r.slot, r.orig) for t in proc.threads.values() for r in t.returns]
    line.rebuild_returns(proc.mem, live)
    line.note_return(proc.mem, slot, orig)


def on_return(th: Thread, regs: Any) -> list[ReturnInstance]:
    """At the trampoline the `ret` popped the slot, and with `ret imm16` the immediate
    too: the returning frame's slot is the highest pending one at or below rsp - 8, at
    most 65535 lower. Entries below it are frames left without returning (longjmp). Pop
    the returning frame's entries (most recent first), point rip at the original."""
    top = regs.rsp - 8
    rets = th.returns
    # Slots fall from the outermost entry to the innermost: skip those above `top`.
    i = len(rets)
    while i and rets[i - 1].slot <= top:
        i -= 1
    if i == len(rets) or rets[i].slot < top - RET_IMM_MAX:
        raise TargetError(
            f"thread {th.tid} returned through the trampoline with no pending return at {top:#x}"
        )
    slot = rets[i].slot
    done = rets[i:][::-1]
    done = [r for r in done if r.slot == slot]
    del rets[i:]
    regs.rip = done[-1].orig
    return done


def disarm(proc: Process, th: Thread) -> None:
    """Put the real return addresses back before an unwinder walks this thread's stack."""
    tramp = proc.xol.trampoline
    for r in th.returns:
        if r.armed:
            if proc.mem.read_u64(r.slot) == tramp:
                proc.mem.write_u64(r.slot, r.orig)
            r.armed = False


def after_catch(proc: Process, th: Thread, rsp: int) -> None:
    """At __cxa_begin_catch's entry (`rsp` is its return slot, just below the catching
    frame): entries at or below it belonged to unwound frames; re-arm the others."""
    rets = th.returns
    while rets and rets[-1].slot <= rsp:
        rets.pop()
    tramp = proc.xol.trampoline
    for r in rets:
        if not r.armed:
            if proc.mem.read_u64(r.slot) == r.orig:
                _note(proc, r.slot, r.orig)
                proc.mem.write_u64(r.slot, tramp)
            r.armed = True


def restore_all(proc: Process, th: Thread) -> None:
    """Detach: every pending slot that still holds the trampoline gets its original."""
    disarm(proc, th)
    th.returns.clear()
