"""EFLAGS bits and the sixteen jcc conditions, as the SDM defines them."""

from __future__ import annotations

from collections.abc import Callable

from capstone import x86 as cs

CF = 1 << 0
PF = 1 << 2
AF = 1 << 4
ZF = 1 << 6
SF = 1 << 7
TF = 1 << 8
IF = 1 << 9
DF = 1 << 10
OF = 1 << 11
NT = 1 << 14
RF = 1 << 16
VM = 1 << 17
AC = 1 << 18
ID = 1 << 21

# What popf may change at CPL 3 (IOPL is 0 for user processes, so IF and IOPL stay put).
POPF_WRITABLE = CF | PF | AF | ZF | SF | TF | DF | OF | NT | AC | ID
# pushf stores the flags with RF and VM cleared.
PUSHF_IMAGE_MASK = ~(RF | VM) & 0xFFFF_FFFF


def _set(flags: int, bit: int) -> bool:
    return bool(flags & bit)


def _lt(f: int) -> bool:
    return _set(f, SF) != _set(f, OF)


Condition = Callable[[int], bool]

# Keyed by capstone instruction id, so jcc rel8 (7x) and rel32 (0f 8x) share one entry.
JCC_CONDITIONS: dict[int, Condition] = {
    cs.X86_INS_JO: lambda f: _set(f, OF),
    cs.X86_INS_JNO: lambda f: not _set(f, OF),
    cs.X86_INS_JB: lambda f: _set(f, CF),
    cs.X86_INS_JAE: lambda f: not _set(f, CF),
    cs.X86_INS_JE: lambda f: _set(f, ZF),
    cs.X86_INS_JNE: lambda f: not _set(f, ZF),
    cs.X86_INS_JBE: lambda f: _set(f, CF) or _set(f, ZF),
    cs.X86_INS_JA: lambda f: not _set(f, CF) and not _set(f, ZF),
    cs.X86_INS_JS: lambda f: _set(f, SF),
    cs.X86_INS_JNS: lambda f: not _set(f, SF),
    cs.X86_INS_JP: lambda f: _set(f, PF),
    cs.X86_INS_JNP: lambda f: not _set(f, PF),
    cs.X86_INS_JL: _lt,
    cs.X86_INS_JGE: lambda f: not _lt(f),
    cs.X86_INS_JLE: lambda f: _set(f, ZF) or _lt(f),
    cs.X86_INS_JG: lambda f: not _set(f, ZF) and not _lt(f),
}
