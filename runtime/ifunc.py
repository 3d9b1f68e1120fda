"""IFUNC symbols (strlen, memcpy, ...): which implementation a process really calls.

An STT_GNU_IFUNC symbol's address is its resolver, which runs once, while the dynamic
linker relocates, and returns the implementation for this CPU (`__strlen_avx2`). The
linker writes that address into GOT slots; we read them back instead of guessing:

1. the file's own R_X86_64_IRELATIVE relocations whose addend is the resolver (libc calls
   its own IFUNCs through these; they are applied at load time, even with lazy binding);
2. else R_X86_64_JUMP_SLOT / GLOB_DAT slots that name the symbol in the process's other
   modules (the program's PLT), once they are bound.

Slots are read in the traced process when the file is mapped and relocated there, else in
our own process when it maps the same file (the tracer's libc is the target's libc, and the
resolver's choice depends only on the CPU). A program started with -c is held before the
dynamic linker relocates, so for libc the answer comes from our own process; an IFUNC in a
library the tracer does not map, probed before the target relocated it, is refused with the
`FUNC@resolver` alternative.
"""

from __future__ import annotations

import functools
import os
import struct

from runtime.elfread import ElfImage, NotElf
from runtime.elfsyms import ElfFile, FileIdentity, Symbol, load_bias
from runtime.procmaps import mapped_files, read_maps

_RELA = struct.Struct("<QQq")
_SYM = struct.Struct("<IBBHQQ")
R_GLOB_DAT, R_JUMP_SLOT, R_IRELATIVE = 6, 7, 37
SHT_RELA, SHF_ALLOC = 4, 0x2
RESOLVER_SUFFIX = "@resolver"


# Unbounded: once per file and run. The tracer's own process maps many libraries, and a
# probe on every IFUNC of libc asks about each of them for each symbol.
@functools.cache
def _irelative(path: str, identity: FileIdentity) -> dict[int, tuple[int, ...]]:
    """resolver vaddr -> GOT slot vaddrs written with its result."""
    slots: dict[int, list[int]] = {}
    for offset, rtype, _sym, addend in _relocations(path):
        if rtype == R_IRELATIVE:
            slots.setdefault(addend, []).append(offset)
    return {k: tuple(v) for k, v in slots.items()}


@functools.cache
def _named_slots(path: str, identity: FileIdentity) -> dict[str, tuple[int, ...]]:
    """symbol name -> GOT slot vaddrs of JUMP_SLOT/GLOB_DAT relocations naming it."""
    names = _dynsym_names(path)
    slots: dict[str, list[int]] = {}
    for offset, rtype, sym, _addend in _relocations(path):
        if rtype in (R_JUMP_SLOT, R_GLOB_DAT) and 0 < sym < len(names):
            slots.setdefault(names[sym], []).append(offset)
    return {k: tuple(v) for k, v in slots.items()}


def _relocations(path: str) -> list[tuple[int, int, int, int]]:
    out = []
    try:
        elf = ElfImage.open(path)
    except (OSError, NotElf):
        return []
    for sec in elf.sections:
        if sec.type != SHT_RELA or sec.flags & SHF_ALLOC == 0:
            continue  # only SHF_ALLOC relocation sections are the dynamic ones
        data = elf.section_data(sec) or b""
        usable = len(data) - len(data) % _RELA.size
        for r_offset, r_info, r_addend in _RELA.iter_unpack(data[:usable]):
            out.append((r_offset, r_info & 0xFFFFFFFF, r_info >> 32, r_addend))
    return out


def _dynsym_names(path: str) -> list[str]:
    try:
        elf = ElfImage.open(path)
    except (OSError, NotElf):
        return []
    sec = elf.section(".dynsym")
    link = elf.linked(sec) if sec is not None else None
    data = elf.section_data(sec) if sec is not None else None
    strtab = elf.section_data(link) if link is not None else None
    if data is None or strtab is None:
        return []
    return [strtab[st_name: strtab.find(b"\0", st_name)].decode("utf-8", "replace")
            for st_name, *_ in _SYM.iter_unpack(data[: len(data) - len(data) % _SYM.size])]


def _read_word(pid: int, address: int) -> int | None:
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, 8, address)
    except OSError:
        return None
    finally:
        os.close(fd)
    return int.from_bytes(data, "little") if len(data) == 8 else None


def implementation(elf: ElfFile, sym: Symbol, pid: int | None,
                   maps_of: dict[int, list] | None = None) -> int | None:
    """Link-time vaddr in `elf` of the function the resolver of `sym` chose, or None when
    no process at hand has the answer in its relocations. `maps_of`: maps already read,
    by pid, shared by the calls of one resolve (libc has over a hundred IFUNCs: reading
    /proc/PID/maps for each was most of resolving `libc:*`)."""
    candidates = [p for p in (pid, os.getpid()) if p is not None]
    for p in candidates:
        try:
            maps = maps_of[p] if maps_of is not None and p in maps_of else read_maps(p)
        except OSError:
            continue
        if maps_of is not None:
            maps_of[p] = maps
        bias = load_bias(elf, p, maps)
        if bias is None:
            continue
        for slot in _irelative(elf.path, elf.identity).get(sym.vaddr, ()):
            found = _inside(elf, _read_word(p, slot + bias), bias)
            # Not relocated yet (a process held before ld.so relocates) holds no answer.
            if found is not None and found != sym.vaddr:
                return found
        found = _through_other_modules(elf, sym, p, maps, bias)
        if found is not None:
            return found
    return None


def _through_other_modules(elf: ElfFile, sym: Symbol, pid: int, maps: list,
                           bias: int) -> int | None:
    for path in mapped_files(maps, executable_only=True):
        try:
            other = ElfFile.open(path)
        except Exception:  # noqa: BLE001 - an unreadable mapping has nothing to tell
            continue
        if other.identity == elf.identity:
            continue
        slots = _named_slots(other.path, other.identity).get(sym.name, ())
        if not slots:
            continue
        other_bias = load_bias(other, pid, maps)
        if other_bias is None:
            continue
        for slot in slots:
            found = _inside(elf, _read_word(pid, slot + other_bias), bias)
            if found is not None and found != sym.vaddr:
                return found
    return None


def _inside(elf: ElfFile, value: int | None, bias: int) -> int | None:
    """The link-time vaddr of runtime address `value` if it is code of `elf`."""
    if value is None:
        return None
    vaddr = value - bias
    return vaddr if elf.executable_segment(vaddr) is not None else None
