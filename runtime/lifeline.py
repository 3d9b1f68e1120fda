"""The target's lifeline: an in-target SIGTRAP handler that keeps it alive if the tracer dies.

When the tracer is killed (SIGKILL cannot be caught, so nothing of ours runs), the kernel
detaches every tracee at once, and a thread stopped at one of our int3s does NOT get that
trap's SIGTRAP: it simply runs on from where the stop left it, usually the byte after the
int3, in the middle of the probed instruction. Threads still running then hit the int3s and
trampolines left behind, and with the default disposition each of those kills the program.
A helper process cannot win that race, so the repair must already be inside the target:

- every byte of a probed instruction after the first also becomes an int3 (a "tail"): a
  thread left in the middle of the instruction traps at once instead of running garbage;
- one read+execute area per process (`LifeLine`) holds the handler of runtime/lifeline.S and
  two tables the tracer fills through /proc/PID/mem: every byte of every site with where a
  thread trapping there goes on (the site's XOL slot, a rescue copy in the area for sites the
  tracer emulates, or the branch target/next instruction), and every stack slot whose return
  address was swapped for the trampoline, with the real address;
- the handler is the process's SIGTRAP action (with the program's own flags and mask).

While the tracer lives every SIGTRAP stops in the tracer first, so the handler only runs for
the program's own SIGTRAPs, and then it chains to the program's action (kept in the area:
its handler, SIG_IGN, or SIG_DFL re-raised). After the tracer's death it sends a thread
trapping on a site to the displaced instruction, one trapping on the trampoline to the real
return address, and lets a thread whose stop the tracer had already moved on (rip at a slot
or past an emulated instruction, no int3 before it) continue. Left alone: a one-byte
instruction has no tail, so a thread stopped on it at the moment of death skips it: harmless
for a nop (USDT sites); the frame prologue `push %rbp; mov %rsp,%rbp` is probed as one
two-instruction site (`widen`); other one-byte sites (`push %rbx`, `ret`, ...) keep that risk.

The return table is a cache keyed by stack slot: a slot is written only when its content
changes, so a loop calling a probed function from one place costs nothing after the first
hit. Detach puts the program's own SIGTRAP action back when ours is still installed; the
area stays mapped (a thread might be inside the handler).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from runtime import ptrace_ops as pt
from runtime import trapguard, xol
from runtime.errors import MemoryReadError, PlacementError, TargetError
from runtime.inject import leave_syscall, remote_syscall
from runtime.memory import ProcessMemory
from runtime.procmaps import read_maps
from runtime.threads import Process
from runtime.x86 import encode
from runtime.x86.ops import JccOps, JmpRelOps, NopOps, PlainOps, RetOps, SiteOps
from runtime.xol import XolSpace, syscall_insn

# runtime/lifeline.S assembled (gcc -c; objcopy -O binary -j .text), up to `restorer`'s end.
CODE = bytes.fromhex(
    "817e08800000000f85c40000004c8b82a80000004d8d48ff4c89c848b9157c4a7fb979379e480fafc148c1e8324c8d15"
    "cc0f00004889c148c1e1044d8b1c0a4d85db747c4d39cb740b48ffc04825ff3f0000ebe04d8b5c0a084983fb01740d4d"
    "85db745c4c899aa8000000c34c8b8aa00000004983e9084c89c848b9157c4a7fb979379e480fafc148c1e8334c8d156d"
    "0f04004889c148c1e1044d8b1c0a4d85db742e4d39cb740b48ffc04825ff1f0000ebe04d8b5c0a084c899aa8000000c3"
    "418078ffcc740a66418178fecd037401c3488b05280300004883f80174454885c07402ffe0b80d000000bf0500000048"
    "8d352a03000031d241ba080000000f05b8270000000f054989c0b8ba0000000f054c89c74889c6ba05000000b8ea0000"
    "000f05c3b80f0000000f05"
)
RESTORER = 0x124
PROGRAM_ACTION = 0x400  # the program's own kernel sigaction: handler, flags, restorer, mask
OUR_ACTION = 0x460  # the handler's own sigaction, as rt_sigaction reads it
SITES = 0x1000
SITE_BITS = 14
RETURNS = SITES + (16 << SITE_BITS)
RETURN_BITS = 13
RESCUE = RETURNS + (16 << RETURN_BITS)  # out-of-line copies for sites the tracer emulates
SIZE = RESCUE + 0x10000
GOLDEN = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1
# A site entry's value is where a thread trapping on that byte goes on; these two are special.
GONE, TRAMPOLINE = 0, 1
# Rebuild the return cache from the live entries beyond this many used buckets.
RETURN_LIMIT = (1 << RETURN_BITS) * 3 // 4
SYS_MMAP = 9
# Where the area goes: far below the PIE base (0x55..) and the mmap region (0x7f..).
PLACE_LO, PLACE_HI = 0x1000_0000_0000, 0x2000_0000_0000
PROT_READ, PROT_EXEC = 1, 4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
SA_SIGINFO = 0x4
SA_RESTORER = 0x04000000
SIGTRAP = int(signal.SIGTRAP)


NAME = "lifeline"  # its key in Process.extensions


def of(proc: Process) -> LifeLine | None:
    return proc.extensions.get(NAME)  # type: ignore[return-value]


def bucket(key: int, bits: int) -> int:
    """The handler's hash: the top `bits` bits of key * GOLDEN (mod 2**64)."""
    return ((key * GOLDEN) & MASK64) >> (64 - bits)


@dataclass
class LifeLine:
    """One process's area at `base`: where each site and return slot sits in its tables
    (bucket indexes), mirrored here so the tracer writes only what changes."""

    base: int
    handler_action: bytes = b""
    sites: dict[int, int] = field(default_factory=dict)
    returns: dict[int, tuple[int, int]] = field(default_factory=dict)
    rescue_used: int = 0
    # The buckets `sites` uses, kept beside it: building the set for every byte placed made
    # placing all of libc (12,000 bytes) quadratic, seconds of start-up.
    site_buckets: set[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.site_buckets = set(self.sites.values())

    def forked(self, child: Process, forking_tid: int) -> LifeLine:
        """A fork child's: its memory holds a copy of the tables as they are now (a vfork
        child shares the very memory, so the same bookkeeping)."""
        if child.vfork:
            return self
        return LifeLine(self.base, self.handler_action, dict(self.sites), dict(self.returns),
                        self.rescue_used)

    def clean(self, proc: Process) -> None:
        """Detach (every thread stopped): give the program its own SIGTRAP action back.
        Not in a vfork child: it shares its parent's memory, not its actions."""
        if proc.vfork:
            return
        th = next((t for t in proc.threads.values() if t.stopped), None)
        if th is None:
            return
        regs = pt.new_regs()
        try:
            pt.getregs(th.tid, pt.regs_address(regs))
            th.pending += uninstall(th.tid, proc.mem, proc.xol, regs, self)
        except (pt.PtraceFailed, TargetError, MemoryReadError):
            pass  # the thread died meanwhile, and with it the process (or it is exiting)

    def _free_bucket(self, key: int, used: set[int], bits: int) -> int:
        size = 1 << bits
        i = bucket(key, bits)
        while i in used:
            i = (i + 1) % size
        return i

    def add_site(self, mem: ProcessMemory, addr: int, length: int, resume: int) -> None:
        """Record every byte of the instruction at `addr` before its int3s are written:
        a thread trapping on any of them goes on at `resume`."""
        for a in range(addr, addr + length):
            self._put(mem, a, resume)

    def add_trampoline(self, mem: ProcessMemory, addr: int) -> None:
        self._put(mem, addr, TRAMPOLINE)
        self._put(mem, addr + 1, TRAMPOLINE)

    def _put(self, mem: ProcessMemory, addr: int, value: int) -> None:
        i = self.sites.get(addr)
        if i is None:
            if len(self.sites) >= (1 << SITE_BITS) * 3 // 4:
                raise PlacementError("too many probe sites in one process for its lifeline "
                                     f"table ({len(self.sites)} bytes of instructions)")
            i = self._free_bucket(addr, self.site_buckets, SITE_BITS)
            self.sites[addr] = i
            self.site_buckets.add(i)
        mem.write(self.base + SITES + 16 * i, addr.to_bytes(8, "little") + value.to_bytes(8, "little"))

    def drop_site(self, mem: ProcessMemory, addr: int, length: int) -> None:
        """The site's mapping is gone: keep the keys (probing needs them), clear the values."""
        for a in range(addr, addr + length):
            i = self.sites.get(a)
            if i is not None:
                mem.write(self.base + SITES + 16 * i + 8, bytes(8))

    def rescue_copy(self, mem: ProcessMemory, code_at: Callable[[int], bytes], size: int) -> int:
        """Room in the area for an out-of-line copy the tracer itself never runs (it
        emulates the site): `code_at(addr)` builds it for its address."""
        addr = self.base + RESCUE + self.rescue_used
        if self.rescue_used + size > SIZE - RESCUE:
            raise PlacementError("no room left in the lifeline area for another rescue copy")
        mem.write(addr, code_at(addr))
        self.rescue_used += (size + 15) & ~15
        return addr

    def note_return(self, mem: ProcessMemory, slot: int, orig: int) -> bool:
        """Before the trampoline goes into `slot`: remember `orig` for it. False when the
        cache is full (rebuild it from the live entries, then call again)."""
        known = self.returns.get(slot)
        if known is not None:
            if known[1] != orig:
                self.returns[slot] = (known[0], orig)
                mem.write(self.base + RETURNS + 16 * known[0] + 8, orig.to_bytes(8, "little"))
            return True
        if len(self.returns) >= RETURN_LIMIT:
            return False
        i = self._free_bucket(slot, {b for b, _ in self.returns.values()}, RETURN_BITS)
        self.returns[slot] = (i, orig)
        mem.write(self.base + RETURNS + 16 * i, slot.to_bytes(8, "little") + orig.to_bytes(8, "little"))
        return True

    def rebuild_returns(self, mem: ProcessMemory, live: list[tuple[int, int]]) -> None:
        """Keep only `live` (slot, orig) pairs: one write of the whole table."""
        self.returns = {}
        table = bytearray(16 << RETURN_BITS)
        for slot, orig in live:
            if slot in self.returns:
                continue
            i = self._free_bucket(slot, {b for b, _ in self.returns.values()}, RETURN_BITS)
            self.returns[slot] = (i, orig)
            table[16 * i: 16 * i + 16] = slot.to_bytes(8, "little") + orig.to_bytes(8, "little")
        mem.write(self.base + RETURNS, bytes(table))


def seccomp_mode(pid: int) -> int:
    """0 none, 1 strict, 2 filter (/proc/PID/status `Seccomp:`)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Seccomp:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def check_seccomp(pid: int) -> None:
    """Refuse a process in strict seccomp mode before injecting anything: the kernel kills
    it at the first system call other than read, write, _exit and sigreturn."""
    if seccomp_mode(pid) == 1:
        raise TargetError(f"pid {pid} runs in strict seccomp mode (Seccomp: 1 in "
                          f"/proc/{pid}/status): any system call injected to place probes "
                          "would kill it, so nothing was placed")


def _refused(pid: int, what: str, err: int) -> TargetError:
    why = os.strerror(err)
    if seccomp_mode(pid) == 2:
        return TargetError(f"pid {pid}: its seccomp filter refused the injected {what} "
                           f"({why}), so no probe could be placed safely")
    return TargetError(f"pid {pid}: the injected {what} failed ({why})")


FRAME_PROLOGUE = bytes.fromhex("554889e5")  # push %rbp; mov %rsp,%rbp


def widen(ops: SiteOps, code: bytes) -> SiteOps:
    """A one-byte instruction has no tail to trap a thread left after it. For the frame
    prologue `push %rbp; mov %rsp,%rbp` the site takes both instructions (one slot runs
    them, the `mov` becomes the tail): nothing branches between the two, the frame must be
    built in that order. Other one-byte sites stay as they are."""
    if isinstance(ops, PlainOps) and code.startswith(FRAME_PROLOGUE):
        insn = replace(ops.insn, raw=FRAME_PROLOGUE, op_str="%rbp; mov %rsp, %rbp")
        return PlainOps(insn)
    return ops


def resume_address(line: LifeLine, mem: ProcessMemory, ops: SiteOps, slot: int) -> int:
    """Where a thread trapping on the site goes on without the tracer: its XOL slot, or
    for the classes the tracer emulates the branch target, the next instruction, or a
    rescue copy in the lifeline area (jcc with two absolute exits, pushf/popf copied)."""
    if slot:
        return slot
    if isinstance(ops, NopOps):
        return ops.insn.next_address
    if isinstance(ops, JmpRelOps):
        assert ops.insn.branch_target is not None
        return ops.insn.branch_target
    insn = ops.insn  # type: ignore[attr-defined]
    if isinstance(ops, JccOps):
        cc = _condition(insn.raw)
        assert insn.branch_target is not None
        exits = encode.abs_jmp(insn.next_address) + encode.abs_jmp(insn.branch_target)
        return line.rescue_copy(mem, lambda _: bytes((0x70 | cc, encode.ABS_JMP_SIZE)) + exits,
                                2 + 2 * encode.ABS_JMP_SIZE)
    if isinstance(ops, RetOps):
        return line.rescue_copy(mem, lambda _: insn.raw, insn.length)
    # pushf/popf: position independent, and run natively here no trap flag can leak.
    return line.rescue_copy(mem, lambda _: insn.raw + encode.abs_jmp(insn.next_address),
                            insn.length + encode.ABS_JMP_SIZE)


def _condition(raw: bytes) -> int:
    """The condition code of a jcc (short 7x or near 0f 8x), prefixes skipped."""
    for i, b in enumerate(raw):
        if 0x70 <= b <= 0x7F:
            return b & 0xF
        if b == 0x0F and i + 1 < len(raw):
            return raw[i + 1] & 0xF
    raise PlacementError(f"not a conditional jump: {raw.hex()}")


def _action(handler: int, flags: int, restorer: int, mask: int) -> bytes:
    return b"".join(v.to_bytes(8, "little") for v in (handler, flags, restorer, mask))


def install(tid: int, mem: ProcessMemory, space: XolSpace, regs: Any) -> tuple[LifeLine, list[int]]:
    """Map the area and make its handler the SIGTRAP action, in the stopped thread `tid`
    (`regs` its registers: scratch space goes below the red zone of its stack)."""
    call = _syscall_runner(tid, mem, space, regs)
    pending: list[int] = []
    # At a fixed place away from where the kernel puts mmaps, brk and PIE images: a mapping
    # of its choosing made at exec would move every library the program maps after it.
    hints = xol.candidate_addresses(read_maps(mem.pid), PLACE_LO, PLACE_HI, SIZE)[:4] or [0]
    base = -errno.ENOMEM
    for hint in hints:
        flags = MAP_PRIVATE | MAP_ANONYMOUS | (xol.MAP_FIXED_NOREPLACE if hint else 0)
        base, sigs = call(SYS_MMAP, (hint, SIZE, PROT_READ | PROT_EXEC, flags, -1 & MASK64, 0))
        pending += sigs
        if base == hint or (base > 0 and not hint):
            break
    if base < 0:
        raise _refused(mem.pid, "mmap", -base)
    scratch = trapguard.scratch(regs.rsp)
    _, sigs = call(trapguard.SYS_RT_SIGACTION, (SIGTRAP, 0, scratch, trapguard.SIGSET_SIZE))
    pending += sigs
    program = mem.read(scratch, trapguard.ACTION_SIZE)
    flags = int.from_bytes(program[8:16], "little")
    mask = int.from_bytes(program[24:32], "little")
    ours = _action(base, (flags | SA_SIGINFO | SA_RESTORER) & 0xFFFF_FFFF, base + RESTORER, mask)
    mem.write(base, CODE)
    mem.write(base + PROGRAM_ACTION, program)
    mem.write(base + OUR_ACTION, ours)
    line = LifeLine(base, ours)
    if space.trampoline:
        line.add_trampoline(mem, space.trampoline)
    result, sigs = call(trapguard.SYS_RT_SIGACTION,
                        (SIGTRAP, base + OUR_ACTION, 0, trapguard.SIGSET_SIZE))
    pending += sigs
    if result < 0:
        raise _refused(mem.pid, "rt_sigaction", -result)
    return line, pending


def _syscall_runner(tid: int, mem: ProcessMemory, space: XolSpace,
                    regs: Any) -> Callable[[int, tuple[int, ...]], tuple[int, list[int]]]:
    """How to run system calls in `tid`: through syscall stops (a single step's SIGTRAP is
    what resets dispositions). At an event stop inside a system call (exec, fork: rax still
    holds the -ENOSYS of the entry) the call's return value would overwrite ours: the
    thread is first let reach that call's exit."""
    insn = syscall_insn(mem, space)
    early: list[int] = []
    if regs.orig_rax != MASK64 and regs.rax == -errno.ENOSYS & MASK64:
        early += leave_syscall(tid)

    def call(nr: int, args: tuple[int, ...]) -> tuple[int, list[int]]:
        result, pending = remote_syscall(tid, insn, nr, args)
        pending[:0] = early
        early.clear()
        return result, pending
    return call


def uninstall(tid: int, mem: ProcessMemory, space: XolSpace, regs: Any,
              line: LifeLine) -> list[int]:
    """Detach: give the program its own SIGTRAP action back, if ours is still the one
    installed (the program may have set another since)."""
    call = _syscall_runner(tid, mem, space, regs)
    scratch = trapguard.scratch(regs.rsp)
    _, pending = call(trapguard.SYS_RT_SIGACTION, (SIGTRAP, 0, scratch, trapguard.SIGSET_SIZE))
    if int.from_bytes(mem.read(scratch, 8), "little") != line.base:
        return pending
    _, sigs = call(trapguard.SYS_RT_SIGACTION,
                   (SIGTRAP, line.base + PROGRAM_ACTION, 0, trapguard.SIGSET_SIZE))
    return pending + sigs
