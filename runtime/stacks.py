"""User stacks: captured at the hit as addresses and the files they lay in, symbolised
when printed.

At the hit the thread is stopped and its stack is unwound by CFI (runtime/unwind/); what
is kept is each frame's runtime pc and (file, link-time address), enough to name it later
whatever the process does next (exit, exec, dlclose). Symbolising (symbol tables,
MiniDebugInfo, separate debug files, inlined-call chains from DWARF, C++ demangling) runs
once per distinct frame when the stack is first printed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

from runtime.demangle import demangle as demangle_name
from runtime.elfsyms import ElfFile, FileIdentity, SymbolCache
from runtime.errors import UprobeError
from runtime.memory import ProcessMemory
from runtime.output.values import Frame, Stack
from runtime.pltnames import plt_names
from runtime.procmaps import Mapping, read_maps
from runtime.unwind.inlines import InlineIndex
from runtime.unwind.modules import MapSnapshot, loader_for
from runtime.unwind.unwinder import RawFrame, Unwinder

# What a frame symbolises to: (symbol, offset) pairs, inlined calls first.
Names = tuple[tuple[str | None, int], ...]


class Stacks:
    """One per session: the unwinder's tables, one map snapshot per process, and the
    symbol cache for printing."""

    def __init__(self, symbols: SymbolCache) -> None:
        self.symbols = symbols
        self.unwinder = Unwinder()
        self._load = loader_for(symbols.get)
        self._snaps: dict[int, tuple[int, MapSnapshot]] = {}
        self._names: dict[tuple[FileIdentity, int, bool], Names] = {}
        self._inlines: dict[FileIdentity, InlineIndex] = {}
        self._vdso_paths: dict[str, str] = {}
        # Module names to print for files that stand for something else (the vDSO copy).
        self._display: dict[str, str] = {}
        self.demangle = True  # False (--no-demangle): C++ names as the symbol table has them

    # -- capture ---------------------------------------------------------------------

    def snapshot(self, pid: int, generation: int = 0, need: int = 0) -> MapSnapshot:
        """The mappings of `pid`, read again when the process's mappings changed (the
        engine bumps `generation` at exec and at every dlopen/dlclose) or when `need`
        lies in none of them."""
        cached = self._snaps.get(pid)
        if cached is not None and cached[0] == generation and (not need or cached[1].covers(need)):
            return cached[1]
        try:
            maps = read_maps(pid)
        except UprobeError:
            maps = []
        snap = MapSnapshot(maps, self._load, lambda m: self._vdso_image(pid, m))
        self._snaps[pid] = (generation, snap)
        return snap

    def _vdso_image(self, pid: int, m: Mapping) -> ElfFile | None:
        """The kernel's vDSO as mapped in `pid`, as an ElfFile (symbols, CFI): copied once
        per distinct image into a content-named file, since the rest reads files."""
        try:
            mem = ProcessMemory(pid)
        except UprobeError:
            return None
        try:
            image = mem.read_upto(m.start, m.end - m.start)
        finally:
            mem.close()
        if not image.startswith(b"\x7fELF"):
            return None
        digest = hashlib.sha256(image).hexdigest()[:16]
        path = self._vdso_paths.get(digest)
        if path is None:
            folder = os.path.join(tempfile.gettempdir(), f"uprobe-vdso-{os.getuid()}")
            path = os.path.join(folder, f"vdso-{digest}.so")
            try:
                os.makedirs(folder, mode=0o700, exist_ok=True)
                if not os.path.exists(path):
                    tmp = f"{path}.{os.getpid()}"
                    with open(tmp, "wb") as out:
                        out.write(image)
                    os.replace(tmp, path)
                elf = self._load(path)
            except (OSError, UprobeError):
                return None
            self._vdso_paths[digest] = path
            self._display[elf.path] = "[vdso]"
            return elf
        try:
            return self._load(path)
        except (OSError, UprobeError):
            return None

    def capture(self, pid: int, generation: int, regs: Any, mem: Any, limit: int,
                fix_ra: Callable[[int, int], int] | None = None) -> list[RawFrame]:
        snap = self.snapshot(pid, generation, regs.rip)
        return self.unwinder.unwind(regs, mem, snap, limit, fix_ra)

    def value(self, frames: list[RawFrame], mode: str, limit: int,
              demangle: bool | None = None) -> Stack:
        """A printable Stack that names its frames only when printed; inlined calls
        count toward `limit` like any frame; C++ names demangled unless asked not to
        (`demangle` None: the session's setting, `self.demangle`)."""
        if demangle is None:
            demangle = self.demangle
        raw = tuple(frames)
        # The files by object identity: cheap to hash, and each ElfFile stays alive (and
        # unique) as long as the raw frames that hold it.
        key = tuple((f.pc, id(f.elf)) for f in raw)
        inlined = mode != "raw"
        return Stack(mode=mode, key=key, resolve=lambda: self.frames(raw, inlined, demangle)[:limit])

    # -- symbolising -----------------------------------------------------------------

    def frames(self, raw: tuple[RawFrame, ...], inlined: bool = True,
               demangle: bool = True) -> tuple[Frame, ...]:
        """Frames to print: inlined calls as frames of their own (gdb's view), unless
        `inlined` is false (raw mode: one line per address)."""
        out: list[Frame] = []
        for f in raw:
            module = f.elf.path if f.elf is not None else None
            if module is not None:
                module = self._display.get(module, module)
            names = self.names(f)
            for name, off in (names if inlined else names[-1:]):
                if demangle and name is not None:
                    name = demangle_name(name)
                out.append(Frame(name, off, f.pc, module))
        return tuple(out)

    def names(self, f: RawFrame) -> Names:
        """(symbol, offset) for one frame, innermost inlined call first; the offset is
        that of the pc itself, as bpftrace prints it."""
        if f.elf is None:
            return ((None, 0),)
        key = (f.elf.identity, f.vaddr, f.exact)
        found = self._names.get(key)
        if found is None:
            found = self._names[key] = self._name(f.elf, f.vaddr, f.exact)
        return found

    def _name(self, elf: ElfFile, vaddr: int, exact: bool) -> Names:
        pc_vaddr = vaddr if exact else vaddr + 1
        # A PLT stub first: no symbol covers it (the one before it, often _init, would
        # seem to run on over it).
        hit = plt_names(elf.path, elf.identity).name_at(vaddr) or elf.symbolize(vaddr)
        if hit is None:
            return ((None, 0),)
        name, off = hit
        start = vaddr - off
        chain = self.inlines(elf).chain(vaddr)
        names: list[tuple[str | None, int]] = [(n, pc_vaddr - low) for n, low in chain]
        names.append((name, pc_vaddr - start))
        return tuple(names)

    def inlines(self, elf: ElfFile) -> InlineIndex:
        idx = self._inlines.get(elf.identity)
        if idx is None:
            idx = self._inlines[elf.identity] = InlineIndex.load(elf)
        return idx

    def symbolize(self, pid: int, addr: int, generation: int = 0) -> tuple[str, int] | None:
        """(name, offset) for one runtime address of a live process (usym, func)."""
        snap = self.snapshot(pid, generation, addr)
        loc = snap.locate(addr)
        if loc is None:
            return None
        # The function itself, not inlined calls: func and usym name the symbol, and
        # reading DWARF is too slow for a hit.
        hit = loc[0].symbolize(loc[1])
        return None if hit is None else (self._readable(hit[0]), hit[1])

    def _readable(self, name: str) -> str:
        return demangle_name(name) if self.demangle else name
