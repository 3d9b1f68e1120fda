"""ELF function symbols and address arithmetic, loaded once per file identity.

Headers, sections and symbol tables are unpacked with `struct` (runtime/elfread.py):
pyelftools builds a Container per header and per symbol (~10 us each; libraries carry
thousands), which made reading libc most of a one-probe start-up.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from runtime import debugsyms
from runtime.demangle import demangle, without_params
from runtime.elfread import EM_X86_64, ET_DYN, PT_LOAD, ElfImage, NotElf
from runtime.errors import TargetError
from runtime.procmaps import Mapping, file_mappings, read_maps

_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym: name, info, other, shndx, value, size
_STT_FUNC = 2
_STT_GNU_IFUNC = 10
_SHN_UNDEF = 0
# sh_type numbers as the Section records name them (pyelftools' names, kept for callers).
_SECTION_TYPES = {0: "SHT_NULL", 1: "SHT_PROGBITS", 2: "SHT_SYMTAB", 3: "SHT_STRTAB",
                  4: "SHT_RELA", 5: "SHT_HASH", 6: "SHT_DYNAMIC", 7: "SHT_NOTE",
                  8: "SHT_NOBITS", 9: "SHT_REL", 11: "SHT_DYNSYM", 14: "SHT_INIT_ARRAY",
                  15: "SHT_FINI_ARRAY", 16: "SHT_PREINIT_ARRAY"}
_PF_X = 1
_BINDINGS = {0: "local", 1: "global", 2: "weak", 10: "unique"}
# Preferred name when several symbols share an address: exported before weak before local.
_BIND_RANK = {"global": 0, "unique": 0, "weak": 1, "local": 2}
# Characters only a demangled C++ name contains: such a pattern is matched demangled too.
_CXX_CHARS = ":()<> ~,&"


@dataclass(frozen=True)
class FileIdentity:
    """What makes two opens the same file: a rebuilt or replaced file gets a new identity."""

    dev: int
    ino: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, path: str) -> FileIdentity:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise TargetError(f"{path}: no such file") from None
        except PermissionError:
            raise TargetError(f"{path}: permission denied") from None
        return cls(st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class Symbol:
    """A defined function: link-time `vaddr`, `offset` in the file (None when the address
    has no file bytes), `kind` 'func' or 'ifunc', `binding` 'global'/'weak'/'local'."""

    name: str
    vaddr: int
    size: int
    offset: int | None
    kind: str = "func"
    binding: str = "global"


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD program header."""

    vaddr: int
    memsz: int
    offset: int
    filesz: int
    flags: int

    @property
    def executable(self) -> bool:
        return bool(self.flags & _PF_X)


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    offset: int
    size: int
    type: str


@dataclass(frozen=True, eq=False)
class ElfFile:
    """One loaded ELF: function symbols sorted by address, with name lookup, and the
    vaddr <-> file offset mapping through the PT_LOAD headers. Immutable once built."""

    path: str
    identity: FileIdentity
    is_pie: bool
    entry: int
    segments: tuple[Segment, ...]
    sections: dict[str, Section]
    functions: tuple[Symbol, ...]
    build_id: str | None = None
    _starts: list[int] = field(default_factory=list, repr=False, compare=False)
    _ends: list[int] = field(default_factory=list, repr=False, compare=False)
    _by_name: dict[str, list[Symbol]] = field(default_factory=dict, repr=False, compare=False)
    _sorted_names: list[str] = field(default_factory=list, repr=False, compare=False)
    # Built on first use: (demangled, demangled without parameters, mangled) per C++ name.
    _cxx: list[tuple[str, str, str]] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def open(cls, path: str) -> ElfFile:
        """The ELF at `path`, shared by every caller while the file keeps its identity."""
        real = os.path.realpath(path)
        return _load(real, FileIdentity.of(real))

    # -- addresses -------------------------------------------------------------------

    def vaddr_to_offset(self, vaddr: int) -> int | None:
        """File offset of link-time `vaddr`, None if no file bytes back it (bss, gaps)."""
        for seg in self.segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        return None

    def offset_to_vaddr(self, offset: int) -> int | None:
        """Link-time vaddr of file `offset`, None if no PT_LOAD maps it."""
        for seg in self.segments:
            if seg.offset <= offset < seg.offset + seg.filesz:
                return offset - seg.offset + seg.vaddr
        return None

    def executable_segment(self, vaddr: int) -> Segment | None:
        """The executable PT_LOAD containing `vaddr` (file-backed part only)."""
        for seg in self.segments:
            if seg.executable and seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return seg
        return None

    def load_bias(self, pid: int, maps: list[Mapping] | None = None) -> int | None:
        """Runtime address minus link-time address for this file in `pid`, None when the
        file is not mapped there. Zero for a non-PIE executable."""
        return load_bias(self, pid, maps)

    # -- symbols ---------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Every function name, sorted (aliases included)."""
        return list(self._sorted_names)

    def symbol_vaddr(self, name: str) -> int | None:
        """Link-time address of any defined symbol (data included), e.g. for USDT
        `symbol(%rip)` operands; the full tables are read on first use only."""
        return _all_symbols(self.path, self.identity).get(name)

    def function(self, name: str) -> Symbol | None:
        """The function called `name`; when a name is defined twice (local symbols of two
        object files) the one listed first by address wins: use `functions_named`."""
        found = self._by_name.get(name)
        return found[0] if found else None

    def functions_named(self, name: str) -> list[Symbol]:
        return list(self._by_name.get(name, ()))

    def match(self, pattern: str) -> list[Symbol]:
        """Functions whose name matches the glob `pattern` (case-sensitive), by name then
        address; a pattern without wildcards is an exact lookup. C++ functions also match
        by their demangled name, with or without the parameter list: `ns::K::f` names
        every overload, `ns::K::f(int)` one, `ns::K::*` all members."""
        found = self._match_raw(pattern)
        if found and not any(c in pattern for c in _CXX_CHARS):
            return found
        extra = self.match_demangled(pattern)
        if not found:
            return extra
        seen = {(s.name, s.vaddr) for s in found}
        return found + [s for s in extra if (s.name, s.vaddr) not in seen]

    def match_demangled(self, pattern: str) -> list[Symbol]:
        if not self._cxx:
            if not any(n.startswith("_Z") for n in self._sorted_names):
                return []
            for name in self._sorted_names:
                if name.startswith("_Z"):
                    full = demangle(name)
                    if full != name:
                        self._cxx.append((full, without_params(full), name))
        glob = any(c in pattern for c in "*?[")
        hits: list[str] = []
        for full, base, mangled in self._cxx:
            if glob:
                ok = fnmatch.fnmatchcase(full, pattern) or fnmatch.fnmatchcase(base, pattern)
            else:
                ok = pattern in (full, base)
            if ok:
                hits.append(mangled)
        return [sym for name in hits for sym in self._by_name[name]]

    def _match_raw(self, pattern: str) -> list[Symbol]:
        if not any(c in pattern for c in "*?["):
            return self.functions_named(pattern)
        # Only names sharing the pattern's literal prefix can match: bisect to that range
        # so `PyObject_*` scans dozens of names, not thousands.
        cut = min(i for i in (pattern.find(c) for c in "*?[") if i >= 0)
        prefix = pattern[:cut]
        lo = bisect.bisect_left(self._sorted_names, prefix)
        hi = bisect.bisect_left(self._sorted_names, prefix + "\U0010ffff", lo) if prefix else None
        names = fnmatch.filter(self._sorted_names[lo:hi], pattern)
        return [sym for name in names for sym in self._by_name[name]]

    def symbolize(self, vaddr: int) -> tuple[str, int] | None:
        """(function name, offset into it) for link-time `vaddr`, or None.

        A zero-size symbol (hand-written assembly without .size) is taken to run up to the
        next symbol, as perf does, so that stacks through such code still read.
        """
        i = bisect.bisect_right(self._starts, vaddr) - 1
        # Walk back over aliases and nested symbols: the answer is the covering symbol
        # with the greatest start, and at that start the earliest (preferred) alias.
        found = -1
        for j in range(i, max(-1, i - 32), -1):
            if found >= 0 and self._starts[j] != self._starts[found]:
                break
            if vaddr < self._ends[j]:
                found = j
        if found < 0:
            return None
        return self.functions[found].name, vaddr - self._starts[found]

    def read_function_bytes(self, sym: Symbol) -> bytes:
        """The bytes of `sym` as stored in the file (for instruction-boundary checks)."""
        if sym.offset is None or sym.size <= 0:
            return b""
        return self.read(sym.offset, sym.size)

    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes of the file at `offset`."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(size)


def load_bias(elf: ElfFile, pid: int, maps: list[Mapping] | None = None) -> int | None:
    """Runtime minus link-time address of `elf` in `pid`, from the lowest-offset mapping
    of the file: its file offset lies in some PT_LOAD, whose vaddr gives the bias."""
    maps = read_maps(pid) if maps is None else maps
    mine = file_mappings(maps, elf.identity.dev, elf.identity.ino)
    if not mine:
        return None
    first = min(mine, key=lambda m: (m.offset, m.start))
    for seg in elf.segments:
        # Segments are mapped from the page below p_offset, so compare page-aligned.
        page_off = seg.offset & ~0xFFF
        if page_off <= first.offset < seg.offset + max(seg.filesz, 1):
            return first.start - first.offset - (seg.vaddr - seg.offset)
    return first.start - first.offset


class SymbolCache:
    """The session's view of ELF files: one ElfFile per path while the file's identity is
    unchanged, plus runtime-address symbolization for a process."""

    def __init__(self) -> None:
        self._files: dict[str, ElfFile] = {}

    def get(self, path: str) -> ElfFile:
        real = os.path.realpath(path)
        ident = FileIdentity.of(real)
        elf = self._files.get(real)
        if elf is None or elf.identity != ident:
            elf = _load(real, ident)
            self._files[real] = elf
        return elf

    def symbolize(self, maps: list[Mapping], address: int) -> str:
        """`name+0xoff` for a runtime address, `[path]+0xoff` when only the file is known,
        or the hex address."""
        for m in maps:
            if not m.contains(address):
                continue
            if not m.path.startswith("/") or m.deleted:
                break
            try:
                elf = self.get(m.path)
            except TargetError:
                break
            vaddr = elf.offset_to_vaddr(m.file_offset_of(address))
            hit = elf.symbolize(vaddr) if vaddr is not None else None
            if hit is None:
                return f"[{os.path.basename(m.path)}]+{m.file_offset_of(address):#x}"
            name, off = hit
            return f"{name}+{off}" if off else name
        return f"{address:#x}"


@functools.lru_cache(maxsize=64)
def _load(path: str, identity: FileIdentity) -> ElfFile:
    """Parse `path`; keyed by identity so a rebuilt file is parsed afresh."""
    try:
        return _parse(path, identity)
    except IsADirectoryError:
        raise TargetError(f"{path} is a directory, not an ELF file") from None
    except OSError as e:
        raise TargetError(f"cannot read {path}: {e.strerror or e}") from None


def _parse(path: str, identity: FileIdentity) -> ElfFile:
    try:
        elf = ElfImage.open(path)
    except NotElf as e:
        if str(e) == "not an ELF file":
            raise TargetError(f"{path} is not an ELF file") from None
        raise TargetError(f"{path} is not a valid ELF file ({e})") from None
    if elf.machine != EM_X86_64:
        raise TargetError(f"{path} is not an x86-64 ELF file")
    segments = tuple(Segment(p.vaddr, p.memsz, p.offset, p.filesz, p.flags)
                     for p in elf.segments if p.type == PT_LOAD)
    sections: dict[str, Section] = {}
    for s in elf.sections:
        sections.setdefault(s.name, Section(s.name, s.addr, s.offset, s.size,
                                            _SECTION_TYPES.get(s.type, str(s.type))))
    raw = list(_function_entries(elf))
    build_id = elf.build_id()
    is_pie = elf.type == ET_DYN
    entry = elf.entry
    if ".symtab" not in sections:
        raw.extend(_debug_file_functions(path, build_id))
    return _assemble(path, identity, is_pie, entry, segments, sections, raw, build_id)


def _defined_symbols(
    elf: ElfImage, sections: tuple[str, ...]
) -> Iterable[tuple[str, int, int, int]]:
    """(name, info, vaddr, size) of every named, defined symbol in the given symbol tables,
    unpacked with struct: pyelftools' per-symbol objects are too slow for libc-sized tables."""
    for secname in sections:
        sec = elf.section(secname)
        data = elf.section_data(sec) if sec is not None else None
        link = elf.linked(sec) if sec is not None else None
        strtab = elf.section_data(link) if link is not None else None
        if data is None or strtab is None:
            continue
        usable = len(data) - len(data) % _SYM.size
        for st_name, info, _other, shndx, value, size in _SYM.iter_unpack(data[:usable]):
            if shndx == _SHN_UNDEF or not st_name:
                continue
            name = strtab[st_name : strtab.find(b"\0", st_name)].decode("utf-8", "replace")
            if name:
                yield name, info, value, size


@functools.lru_cache(maxsize=16)
def _all_symbols(path: str, identity: FileIdentity) -> dict[str, int]:
    """name -> vaddr for every defined symbol of any type in .symtab and .dynsym."""
    try:
        elf = ElfImage.open(path)
    except NotElf:
        return {}
    return {name: value
            for name, _info, value, _size in _defined_symbols(elf, (".dynsym", ".symtab"))}


def _function_entries(elf: ElfImage) -> Iterable[tuple[str, int, int, str, str]]:
    """(name, vaddr, size, kind, binding) of defined functions in .symtab and .dynsym."""
    for name, info, value, size in _defined_symbols(elf, (".symtab", ".dynsym")):
        kind = info & 0xF
        if (kind != _STT_FUNC and kind != _STT_GNU_IFUNC) or value == 0:
            continue
        yield (
            name,
            value,
            size,
            "ifunc" if kind == _STT_GNU_IFUNC else "func",
            _BINDINGS.get(info >> 4, "local"),
        )


def _debug_file_functions(path: str, build_id: str | None) -> list[tuple[str, int, int, str, str]]:
    """Functions of a stripped binary from its separate debug file (runtime/debugsyms.py),
    else from its MiniDebugInfo."""
    debug = debugsyms.debug_file(path, build_id)
    try:
        if debug is not None:
            return list(_function_entries(ElfImage.open(debug)))
        mini = debugsyms.minidebuginfo_bytes(path)
        return list(_function_entries(ElfImage(mini))) if mini is not None else []
    except (OSError, NotElf):
        return []


def _assemble(
    path: str,
    identity: FileIdentity,
    is_pie: bool,
    entry: int,
    segments: tuple[Segment, ...],
    sections: dict[str, Section],
    raw: list[tuple[str, int, int, str, str]],
    build_id: str | None,
) -> ElfFile:
    """Merge .symtab and .dynsym entries: one Symbol per (name, vaddr), keeping the
    larger size and the stronger binding; aliases (same vaddr, other name) all stay."""
    merged: dict[tuple[str, int], tuple[int, str, str]] = {}
    for name, vaddr, size, kind, binding in raw:
        key = (name, vaddr)
        old = merged.get(key)
        if old is None:
            merged[key] = (size, kind, binding)
        else:
            best_binding = min(old[2], binding, key=lambda b: _BIND_RANK.get(b, 3))
            merged[key] = (max(old[0], size), old[1], best_binding)

    def offset_of(vaddr: int) -> int | None:
        for seg in segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        return None

    # Sort by address, and at one address the preferred name first (bisect picks it).
    order = sorted(
        merged.items(),
        key=lambda kv: (kv[0][1], _BIND_RANK.get(kv[1][2], 3), kv[0][0].startswith("_"), kv[0][0]),
    )
    functions = tuple(
        Symbol(name, vaddr, size, offset_of(vaddr), kind, binding)
        for (name, vaddr), (size, kind, binding) in order
    )
    starts = [sym.vaddr for sym in functions]
    ends: list[int] = []
    for sym in functions:
        if sym.size:
            ends.append(sym.vaddr + sym.size)
            continue
        seg_end = next(
            (s.vaddr + s.filesz for s in segments if s.vaddr <= sym.vaddr < s.vaddr + s.filesz),
            sym.vaddr + 1,
        )
        k = bisect.bisect_right(starts, sym.vaddr)
        ends.append(min(starts[k], seg_end) if k < len(starts) else seg_end)
    by_name: dict[str, list[Symbol]] = {}
    for sym in functions:
        by_name.setdefault(sym.name, []).append(sym)
    return ElfFile(
        path=path,
        identity=identity,
        is_pie=is_pie,
        entry=entry,
        segments=segments,
        sections=sections,
        functions=functions,
        build_id=build_id,
        _starts=starts,
        _ends=ends,
        _by_name=by_name,
        _sorted_names=sorted(by_name),
    )
