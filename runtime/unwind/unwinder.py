"""Registers and memory of a stopped thread -> its return addresses, innermost first.

Per frame: find the CFI row for the pc (bisect, tables cached per file identity), compute
the CFA and the caller's registers from it; the kernel's signal trampoline (`mov $15,%rax;
syscall`, glibc's __restore_rt) is recognised by its bytes and the interrupted registers
read from the ucontext on the stack; where no CFI covers a pc, the frame-pointer chain.
The pc of frame 0 and of a frame interrupted by a signal is exact; every other pc is a
return address, so its CFI row and symbol are looked up at pc - 1 (the call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from runtime import debugsyms
from runtime.elfsyms import ElfFile, FileIdentity
from runtime.unwind import cfi
from runtime.unwind.cfi import RA, RBP, RSP, CfiTable
from runtime.unwind.dwexpr import ExprError, evaluate
from runtime.unwind.modules import MapSnapshot
from runtime.unwind.stackmem import StackMemory

SIGRETURN = bytes.fromhex("48c7c00f0000000f05")  # mov $15,%rax; syscall (rt_sigreturn)
UC_MCONTEXT = 40  # offsetof(ucontext_t, uc_mcontext): uc_flags, uc_link, uc_stack
# struct sigcontext's general registers in order, as DWARF register numbers.
SIGCONTEXT_REGS = (8, 9, 10, 11, 12, 13, 14, 15, 5, 4, 6, 3, 1, 0, 2, 7, 16)
# user_regs_struct field -> DWARF register number.
REG_NAMES = {"rax": 0, "rdx": 1, "rcx": 2, "rbx": 3, "rsi": 4, "rdi": 5, "rbp": 6, "rsp": 7,
             "r8": 8, "r9": 9, "r10": 10, "r11": 11, "r12": 12, "r13": 13, "r14": 14,
             "r15": 15, "rip": 16}
USER_TOP = 1 << 47


class RawFrame(NamedTuple):
    """One frame as captured: the runtime pc, the file and link-time address it was
    looked up at (pc - 1 for a return address), and how it was found. A NamedTuple: one
    is made per frame per hit, and a tuple is the cheapest immutable record."""

    pc: int
    elf: ElfFile | None
    vaddr: int
    exact: bool
    how: str  # 'cfi', 'fp', 'signal', 'top'


def regs_of(user_regs: Any) -> dict[int, int | None]:
    return {n: getattr(user_regs, name) for name, n in REG_NAMES.items()}


class Unwinder:
    """CFI tables and trampoline checks, shared by every unwind of a session."""

    def __init__(self) -> None:
        self._cfi: dict[FileIdentity, CfiTable] = {}
        self._sigtramp: dict[tuple[FileIdentity, int], bool] = {}

    def table(self, elf: ElfFile) -> CfiTable:
        t = self._cfi.get(elf.identity)
        if t is None:
            debug = debugsyms.debug_file(elf.path, elf.build_id)
            t = self._cfi[elf.identity] = CfiTable.load(elf.path, debug)
        return t

    def unwind(self, user_regs: Any, mem: Any, snap: MapSnapshot, limit: int,
               fix_ra: Callable[[int, int], int] | None = None) -> list[RawFrame]:
        regs = regs_of(user_regs)
        stack = StackMemory(mem, regs[RSP] or 0)
        return self.walk(regs, stack, snap, limit, fix_ra)

    def walk(self, regs: dict[int, int | None], stack: StackMemory, snap: MapSnapshot,
             limit: int, fix_ra: Callable[[int, int], int] | None = None) -> list[RawFrame]:
        frames: list[RawFrame] = []
        pc = regs[RA] or 0
        exact = True
        how = "top"
        seen: set[tuple[int, int]] = set()
        steps = snap.steps
        while len(frames) < limit and 0 < pc < USER_TOP:
            # What this pc means (file, link-time address, CFI row, signal trampoline or
            # not) is looked up once per snapshot: stacks repeat.
            info = steps.get((pc, exact))
            if info is None:
                info = steps[(pc, exact)] = self._lookup(pc, exact, snap, stack)
            elf, vaddr, row, sigtramp = info
            if sigtramp:
                frames.append(RawFrame(pc, elf, vaddr, True, "signal"))
                nxt = self._signal_step(regs, stack)
                if nxt is None:
                    break
                regs, pc, exact = nxt, nxt[RA] or 0, True
                continue
            frames.append(RawFrame(pc, elf, vaddr, exact, how))
            try:
                if row is not None:
                    nxt = self._cfi_step(row, regs, stack, fix_ra)
                    how = "cfi"
                else:
                    nxt = self._fp_step(regs, stack, fix_ra)
                    how = "fp"
            except (ValueError, ExprError):
                break
            if nxt is None:
                break
            old_sp = regs[RSP] or 0
            new_sp = nxt[RSP] or 0
            key = (nxt[RA] or 0, new_sp)
            # The caller's frame lies above the callee's: anything else is a broken chain
            # (except across a signal frame, handled above).
            if key in seen or (new_sp <= old_sp and not (row is not None and row.signal)):
                break
            seen.add(key)
            exact = row is not None and row.signal
            regs, pc = nxt, nxt[RA] or 0
        return frames

    def _lookup(self, pc: int, exact: bool, snap: MapSnapshot, stack: StackMemory
                ) -> tuple[ElfFile | None, int, cfi.Row | None, bool]:
        if not exact and self._is_sigtramp(pc, snap, stack):
            loc = snap.locate(pc)
            return (loc[0], loc[1], None, True) if loc else (None, pc, None, True)
        at = pc if exact else pc - 1
        loc = snap.locate(at)
        if loc is None:
            return None, at, None, False
        elf, vaddr = loc
        return elf, vaddr, self.table(elf).row(vaddr), False

    def _is_sigtramp(self, pc: int, snap: MapSnapshot, stack: StackMemory) -> bool:
        loc = snap.locate(pc)
        key = (loc[0].identity, loc[1]) if loc else None
        if key is not None:
            known = self._sigtramp.get(key)
            if known is not None:
                return known
        try:
            found = stack.read(pc, len(SIGRETURN)) == SIGRETURN
        except ValueError:
            found = False
        if key is not None:
            self._sigtramp[key] = found
        return found

    @staticmethod
    def _signal_step(regs: dict[int, int | None], stack: StackMemory
                     ) -> dict[int, int | None] | None:
        """The interrupted registers: at __restore_rt, rsp points at the ucontext that
        the kernel pushed (the handler's `ret` popped the restorer address above it)."""
        uc = regs[RSP]
        if not uc:
            return None
        try:
            base = uc + UC_MCONTEXT
            return {n: stack.read_u64(base + 8 * i) for i, n in enumerate(SIGCONTEXT_REGS)}
        except ValueError:
            return None

    @staticmethod
    def _cfi_step(row: cfi.Row, regs: dict[int, int | None], stack: StackMemory,
                  fix_ra: Callable[[int, int], int] | None) -> dict[int, int | None] | None:
        if row.cfa_expr is not None:
            cfa = evaluate(row.cfa_expr, regs, stack.read_u64)
        else:
            base = regs.get(row.cfa_reg)
            if base is None:
                return None
            cfa = (base + row.cfa_offset) & 0xFFFF_FFFF_FFFF_FFFF
        new = dict(regs)
        new[RA] = None
        new[RSP] = cfa
        for reg, kind, arg in row.rules:
            if kind == cfi.OFFSET:
                addr = cfa + arg
                value = stack.read_u64(addr)
                if reg == RA and fix_ra is not None:
                    value = fix_ra(value, addr)
                new[reg] = value
            elif kind == cfi.VAL_OFFSET:
                new[reg] = cfa + arg
            elif kind == cfi.REGISTER:
                new[reg] = regs.get(arg)
            elif kind == cfi.EXPRESSION:
                addr = evaluate(arg, regs, stack.read_u64, push=cfa)
                value = stack.read_u64(addr)
                if reg == RA and fix_ra is not None:
                    value = fix_ra(value, addr)
                new[reg] = value
            elif kind == cfi.VAL_EXPRESSION:
                new[reg] = evaluate(arg, regs, stack.read_u64, push=cfa)
            elif kind == cfi.UNDEFINED:
                new[reg] = None
            elif kind == cfi.SAME:
                new[reg] = regs.get(reg)
        if not new[RA]:
            return None  # the outermost frame (_start, clone's child: RA undefined)
        return new

    @staticmethod
    def _fp_step(regs: dict[int, int | None], stack: StackMemory,
                 fix_ra: Callable[[int, int], int] | None) -> dict[int, int | None] | None:
        """No CFI here: trust the frame-pointer chain (push rbp; mov rsp,rbp)."""
        rbp = regs.get(RBP)
        rsp = regs.get(RSP) or 0
        if not rbp or rbp & 7 or rbp < rsp or rbp >= USER_TOP:
            return None
        ra = stack.read_u64(rbp + 8)
        if fix_ra is not None:
            ra = fix_ra(ra, rbp + 8)
        if not ra:
            return None
        new = dict(regs)
        new[RBP] = stack.read_u64(rbp)
        new[RSP] = rbp + 16
        new[RA] = ra
        return new
