"""The parts of an x86-64 ELF file that start-up needs, read with `struct`.

Placing one probe on libc needs its program headers, section headers, symbol tables and
build-id note. pyelftools parses every header through its construct library and looks a
section up by name by walking them all again: about a third of a second for libc on this
machine, most of a one-probe start-up. This reader unpacks the same headers directly
from a read-only mapping of the file; pyelftools stays the reader for DWARF and CFI.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_NHDR = struct.Struct("<III")
ELFCLASS64 = 2
EM_X86_64 = 62
ET_DYN = 3
PT_LOAD = 1
SHT_NOBITS = 8
NT_GNU_BUILD_ID = 3


class NotElf(ValueError):
    """The bytes are not a well-formed 64-bit little-endian ELF file."""


@dataclass(frozen=True)
class ProgramHeader:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class SectionHeader:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


class ElfImage:
    """Headers and section contents of one ELF file (or ELF bytes, e.g. MiniDebugInfo)."""

    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.data = data
        if len(data) < _EHDR.size or data[:4] != b"\x7fELF":
            raise NotElf("not an ELF file")
        (ident, self.type, self.machine, _version, self.entry, phoff, shoff, _flags, _ehsize,
         phentsize, phnum, shentsize, shnum, shstrndx) = _EHDR.unpack_from(data, 0)
        self.elfclass = ident[4]
        if self.elfclass != ELFCLASS64 or ident[5] != 1:
            raise NotElf("not a 64-bit little-endian ELF file")
        try:
            self.segments = tuple(
                ProgramHeader(t, fl, off, va, fs, ms)
                for t, fl, off, va, _pa, fs, ms, _al in (
                    _PHDR.unpack_from(data, phoff + i * phentsize) for i in range(phnum)))
            raw = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        except struct.error:
            raise NotElf("truncated ELF headers") from None
        names = b""
        if 0 < shstrndx < len(raw):
            _n, _t, _f, _a, off, size, *_ = raw[shstrndx]
            names = bytes(data[off:off + size])
        self.sections = tuple(
            SectionHeader(_cstr(names, n), t, f, a, off, size, link)
            for n, t, f, a, off, size, link, _info, _align, _entsize in raw)
        self._by_name = {s.name: s for s in reversed(self.sections)}

    @classmethod
    def open(cls, path: str) -> ElfImage:
        """Map `path` read-only (OSError and NotElf pass through)."""
        with open(path, "rb") as f:
            try:
                data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            except ValueError:  # an empty file cannot be mapped
                data = b""
        return cls(data)

    def section(self, name: str) -> SectionHeader | None:
        return self._by_name.get(name)

    def section_data(self, name_or_header: str | SectionHeader) -> bytes | None:
        """A section's bytes; None when it is missing or occupies no file space."""
        sec = (self.section(name_or_header) if isinstance(name_or_header, str)
               else name_or_header)
        if sec is None or sec.type == SHT_NOBITS:
            return None
        return bytes(self.data[sec.offset:sec.offset + sec.size])

    def linked(self, sec: SectionHeader) -> SectionHeader | None:
        """The section `sec.link` names (a symbol table's string table)."""
        return self.sections[sec.link] if 0 < sec.link < len(self.sections) else None

    def build_id(self) -> str | None:
        """The GNU build-id as hex, from .note.gnu.build-id."""
        data = self.section_data(".note.gnu.build-id")
        at = 0
        while data is not None and at + _NHDR.size <= len(data):
            namesz, descsz, ntype = _NHDR.unpack_from(data, at)
            desc = at + _NHDR.size + ((namesz + 3) & ~3)
            if ntype == NT_GNU_BUILD_ID and data[at + 12:at + 12 + namesz] == b"GNU\0":
                return data[desc:desc + descsz].hex()
            at = desc + ((descsz + 3) & ~3)
        return None


def _cstr(table: bytes, at: int) -> str:
    end = table.find(b"\0", at)
    return table[at:end if end >= 0 else len(table)].decode("utf-8", "replace")
