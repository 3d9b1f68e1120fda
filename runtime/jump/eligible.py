"""Which probe sites may take the jump path, and why the others keep their int3.

A `jmp rel32` replaces the whole instructions covering the site's first 5 bytes. That is
only safe when each of them can run elsewhere (relocated into the trampoline), and when no
branch in the containing function lands on bytes 1..4 (it would jump into the middle of
our jmp). The function is decoded whole for that; a jump table whose size we cannot read
from the code makes its targets unknown, so such functions keep the trap path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from capstone import x86 as cs

from runtime.x86.analyse import analyse
from runtime.x86.decode import Insn, decode_one, disassembler
from runtime.x86.flags import JCC_CONDITIONS

JMP_SIZE = 5
# Classes the trampoline can run anywhere in the displaced sequence.
_ANYWHERE = {"plain", "rip_relative", "nop", "pushf", "popf", "jmp_rel", "jcc", "ret",
             "jmp_indirect"}
# Classes that leave a return address or an exit behind them: only as the last instruction,
# whose successor lies at or beyond the end of the patched bytes.
_LAST_ONLY = {"call_rel", "call_indirect", "loop", "jrcxz"}

# Per arithmetic flag: capstone's "reads it" bit, and its "writes it" bits.
_ARITH = tuple(
    (getattr(cs, f"X86_EFLAGS_TEST_{flag}"),
     sum(getattr(cs, f"X86_EFLAGS_{how}_{flag}") for how in ("MODIFY", "RESET", "SET",
                                                              "UNDEFINED")))
    for flag in ("CF", "PF", "AF", "ZF", "SF", "OF"))
_ALL_ARITH = (1 << len(_ARITH)) - 1
# Instructions that read the whole flags image (capstone does not mark them as tests).
_READS_ALL_FLAGS = {cs.X86_INS_PUSHF, cs.X86_INS_PUSHFQ, cs.X86_INS_LAHF}
_LIVENESS_WINDOW = 48


@dataclass(frozen=True)
class FunctionCode:
    """The bytes of the function holding a site (and of its split-off parts, e.g. gcc's
    `f.cold`, whose branches jump back into it), at their runtime addresses."""

    name: str
    start: int
    code: bytes
    parts: tuple[tuple[int, bytes], ...] = ()
    # Where the next function starts; the bytes between are alignment padding, which a
    # jmp at the end of a small function may overwrite (0: unknown, none may be used).
    limit: int = 0
    padding: bytes = b""

    @property
    def end(self) -> int:
        return self.start + len(self.code)

    def where(self, address: int) -> str:
        """`f+17` for an address inside the function."""
        off = address - self.start
        return f"{self.name}+{off}" if off else self.name


@dataclass(frozen=True)
class JumpSite:
    """A site that takes the jump path: the instructions the jmp displaces (`covered`
    bytes, at least 5), and whether the flags at the site can be live (when they provably
    are not, the trampoline skips saving them)."""

    address: int
    insns: tuple[Insn, ...]
    flags_live: bool
    # Bytes of the padding after the function that the jmp overwrites (never executed).
    padding: int = 0

    @property
    def covered(self) -> int:
        return sum(i.length for i in self.insns) + self.padding

    @property
    def resume(self) -> int:
        return self.address + self.covered


@dataclass(frozen=True)
class Verdict:
    """The jump path's `site`, or the `reason` the site keeps the trap path."""

    site: JumpSite | None
    reason: str = ""


def _displaced(code: bytes, address: int, stop: int = JMP_SIZE) -> tuple[list[Insn], str]:
    """The whole instructions from `address` that cover `stop` bytes (or fewer, up to the
    function's end), or the reason one cannot be relocated."""
    insns: list[Insn] = []
    at = 0
    while at < stop:
        ops = analyse(code[at:], address + at)
        if ops.refused:
            text = ops.text or "undecodable bytes"
            why = getattr(ops, "reason", ops.refused)
            return [], f"the instruction at +{at} ({text}) cannot be relocated: {why}"
        insn = decode_one(code[at:], address + at)
        if insn is None:
            return [], f"the bytes at +{at} do not decode"
        cls = ops.cls
        last = at + insn.length >= stop
        if cls in _LAST_ONLY and not last:
            return [], (f"the {insn.mnemonic} at +{at} would return or exit into the "
                        "patched bytes")
        if cls not in _ANYWHERE and cls not in _LAST_ONLY:
            return [], f"the instruction at +{at} ({insn.text}) is of class {cls}"
        insns.append(insn)
        at += insn.length
    return insns, ""


@functools.lru_cache(maxsize=256)
def _decode_all(code: bytes) -> tuple[list[Insn], bool]:
    """Every instruction of `code` decoded linearly at address 0 (addresses and branch
    targets are offsets from the start); False when decoding stopped early. Cached by the
    bytes alone: a site is judged when it is placed (link-time addresses) and again when it
    is installed (runtime addresses), and decoding whole functions is most of the cost of
    placing thousands of jump sites."""
    out: list[Insn] = []
    end = 0
    # One cheap pass without operand details over every instruction; the full decode only
    # for the few that branch_into looks at (branches, calls, and the loads that feed a
    # jump table): together about a tenth of the instructions.
    for address, size, mnemonic, _ops in disassembler().disasm_lite(code, 0):
        if mnemonic.rsplit(" ", 1)[-1].startswith(_WATCHED):
            insn = decode_one(code[address:address + size], address)
            if insn is None:
                break
            out.append(insn)
        end = address + size
    return out, end >= len(code)


# Mnemonics (after any prefix word such as `notrack` or `bnd`) whose instructions
# branch_into examines: every branch and call, and movsxd (jump-table index loads).
_WATCHED = ("j", "call", "loop", "xbegin", "movsxd")


def _is_table_jump(insn: Insn) -> bool:
    return insn.id == cs.X86_INS_JMP and insn.branch_target is None


def _bounded_table(insns: list[Insn], at: int) -> bool:
    """A `jmp reg` that is a tail call (no table load before it in the function) is
    harmless; one fed by `movsxd r, dword [base + idx*4]` is a compiler jump table whose
    targets we do not enumerate, so it is not bounded."""
    jmp = insns[at]
    if jmp.mem is not None:
        # jmp [table + idx*8]: a table of absolute addresses; jmp [rip+d]: a GOT tail call.
        return not jmp.mem.index
    if 0x3E in jmp.prefixes:
        return False  # notrack: gcc marks its switch jumps so under -fcf-protection
    for prev in insns[:at]:
        if (prev.id == cs.X86_INS_MOVSXD and prev.mem is not None and prev.mem.index
                and prev.mem.scale == 4):
            return False
    return True


def branch_into(func: FunctionCode, lo: int, hi: int) -> str:
    """Why a branch of `func` (or of its parts) may land in [lo, hi), or ""."""
    for start, code in ((func.start, func.code), *func.parts):
        insns, whole = _decode_all(code)
        if not whole:
            return f"{func.name} does not decode whole, so branch targets are unknown"
        for n, insn in enumerate(insns):
            address = start + insn.address
            rel = insn.branch_target
            target = (start + rel) & _MASK64 if rel is not None else None
            if target is not None and insn.id in _BRANCH_IDS and lo <= target < hi:
                where = func.where(address) if start == func.start else f"{address:#x}"
                return f"a branch at {where} lands inside the patched bytes"
            if insn.id == cs.X86_INS_CALL and lo < start + insn.next_address < hi:
                return f"the call at {func.where(address)} returns inside the patched bytes"
            if _is_table_jump(insn) and not _bounded_table(insns, n):
                return (f"an indirect jump at {func.where(address)} goes through a "
                        "table whose targets cannot be bounded")
    return ""


_MASK64 = (1 << 64) - 1


_BRANCH_IDS = {
    cs.X86_INS_JMP, cs.X86_INS_CALL, cs.X86_INS_JRCXZ, cs.X86_INS_JECXZ, cs.X86_INS_LOOP,
    cs.X86_INS_LOOPE, cs.X86_INS_LOOPNE, cs.X86_INS_XBEGIN, *JCC_CONDITIONS,
}


def flags_live(code: bytes, address: int) -> bool:
    """Whether the arithmetic flags at `address` may be read before all of them are
    written, following straight-line code. A call or a return ends the search as dead
    (the SysV ABI passes no flags into or out of a function); anything unknown is live."""
    md = disassembler()
    written = 0
    for n, ci in enumerate(md.disasm(code, address)):
        if n >= _LIVENESS_WINDOW:
            return True
        if ci.id in _READS_ALL_FLAGS:
            return True
        eflags = ci.eflags
        for bit, (test, _mod) in enumerate(_ARITH):
            if eflags & test and not written & (1 << bit):
                return True
        for bit, (_test, mod) in enumerate(_ARITH):
            if eflags & mod:
                written |= 1 << bit
        if written == _ALL_ARITH:
            return False
        if ci.id in (cs.X86_INS_CALL, cs.X86_INS_RET):
            return False
        if ci.id in _BRANCH_IDS or ci.group(cs.X86_GRP_JUMP) or ci.id in (
                cs.X86_INS_SYSCALL, cs.X86_INS_INT3, cs.X86_INS_UD2):
            return True
    return True


def check_site(code: bytes, address: int, func: FunctionCode | None) -> Verdict:
    """The jump-path verdict for the site at runtime `address`. `code` holds the program's
    bytes from the site on (at least 32, more makes the flag analysis sharper); `func` is
    the containing function, None when its extent is unknown."""
    if func is None or not func.code:
        return Verdict(None, "the site's function has no known size, so branches into the "
                             "patched bytes cannot be ruled out")
    if not func.start <= address < func.start + len(func.code):
        return Verdict(None, "the site lies outside its function's known extent")
    short = address + JMP_SIZE > func.end
    insns, why = _displaced(code, address, func.end - address if short else JMP_SIZE)
    if why:
        return Verdict(None, why)
    padding = 0
    if short:
        why = _padding_reason(func, insns, address)
        if why:
            return Verdict(None, why)
        padding = address + JMP_SIZE - func.end
    end = address + sum(i.length for i in insns) + padding
    why = branch_into(func, address + 1, end)
    if why:
        return Verdict(None, why)
    return Verdict(JumpSite(address, tuple(insns), flags_live(code, address), padding))


_EXITS = {"ret", "jmp_rel", "jmp_indirect"}


def _padding_reason(func: FunctionCode, insns: list[Insn], address: int) -> str:
    """Why the jmp may not run on into the padding after the function, or "": the last
    instruction must leave (ret, jmp), and the bytes up to the next function must be
    alignment padding (nops, int3) that nothing executes."""
    too_close = (f"{func.where(address)} is less than {JMP_SIZE} bytes from the end of its "
                 "function")
    if not insns or not func.limit or func.limit < address + JMP_SIZE:
        return too_close
    last = insns[-1]
    if analyse(last.raw + b"\x90" * 16, last.address).cls not in _EXITS:
        return too_close + ", and it does not end in a return or jump"
    pad = func.padding[: func.limit - func.end]
    at = 0
    while at < len(pad):
        if pad[at] == 0xCC:
            at += 1
            continue
        insn = decode_one(pad[at:], func.end + at)
        if insn is None or analyse(insn.raw + b"\x90" * 16, insn.address).cls != "nop":
            return too_close + ", and what follows it is not padding"
        at += insn.length
    return ""
