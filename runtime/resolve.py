"""Probe specs -> placements: which file (by identity) and which file offset to probe.

Resolution is pure lookup: ELF symbols, USDT notes, process maps. Instruction bytes are
decoded only for `FUNC+OFFSET` and raw addresses, to refuse offsets inside an instruction.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import glob
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from runtime import procfs
from runtime.dwarf.linespec import parse_line_spec
from runtime.elfsyms import ElfFile, Symbol
from runtime.errors import ResolveError, TargetError
from runtime.ifunc import RESOLVER_SUFFIX, implementation
from runtime.procmaps import mapped_files, read_maps
from runtime.usdt import UsdtProbe, read_probes

LIBRARY_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib",
    "/usr/lib",
)
LD_SO_CACHE = "/etc/ld.so.cache"
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Placement:
    """One probe site: the file (path for messages; dev/ino are the key), the site's file
    offset and link-time vaddr, and the function it lies in (`symbol` "" if none)."""

    path: str
    dev: int
    ino: int
    file_offset: int
    symbol: str
    sym_offset: int
    vaddr: int
    # An address probe whose instruction boundary no symbol proves (placed with --unsafe).
    unproven: bool = False


@dataclass(frozen=True)
class UsdtPlacement:
    """A USDT site: where to put the int3, plus the note (args, semaphore file offset)."""

    placement: Placement
    probe: UsdtProbe

    @property
    def semaphore_offset(self) -> int | None:
        return self.probe.semaphore_offset


def is_glob(text: str) -> bool:
    return any(c in text for c in _GLOB_CHARS)


# -- targets --------------------------------------------------------------------------


def find_targets(target: str, pid: int | None = None) -> list[str]:
    """The files a probe target names.

    "" is the main executable of `pid`; a spelling with a slash is a path (or a path glob);
    `libc`, `libc.so.6`, `libpthread` are libraries, looked up first among the files mapped
    in `pid`, then in the linker cache and the standard library directories; any other bare
    name is a program mapped in `pid`, then one on $PATH (as bpftrace does for
    `uprobe:bash:readline`). A glob without a slash matches mapped files by basename when
    `pid` is given, else library names in the linker cache.
    """
    if target == "":
        if pid is None:
            raise ResolveError("probe has no target file and no process (-p/-c) to default to")
        return [procfs.exe(pid)]
    if "/" in target:
        if is_glob(target):
            found = sorted(p for p in glob.glob(target) if os.path.isfile(p))
            if not found:
                raise ResolveError(f"no file matches '{target}'")
            return found
        if not os.path.exists(target):
            raise TargetError(f"{target}: no such file")
        if not os.path.isfile(target):
            raise TargetError(f"{target} is not a regular file")
        return [os.path.abspath(target)]
    maps = read_maps(pid) if pid is not None else []
    if is_glob(target):
        return _glob_by_name(target, pid, mapped_files(maps, executable_only=True))
    mapped = mapped_files(maps, executable_only=False)
    hits = [p for p in mapped if _names_library(os.path.basename(p), target)]
    if hits:
        return _unique_real(hits)
    if _looks_like_library(target):
        found = _library_paths(target)
        if found:
            return found[:1]
        raise ResolveError(f"no library '{target}' found"
                           + (f" in pid {pid} or" if pid is not None else "")
                           + " in the linker cache or library directories")
    on_path = shutil.which(target)
    if on_path:
        return [os.path.abspath(on_path)]
    if os.path.isfile(target):
        return [os.path.abspath(target)]
    raise ResolveError(f"no library or program named '{target}'")


def _glob_by_name(pattern: str, pid: int | None, exec_mapped: list[str]) -> list[str]:
    """A glob without a slash: executable files mapped in `pid` (by basename or full
    path), or without a process, library names in the linker cache."""
    if pid is not None:
        hits = [p for p in exec_mapped
                if fnmatch.fnmatchcase(os.path.basename(p), pattern)
                or fnmatch.fnmatchcase(p, pattern)]
        if not hits:
            raise ResolveError(f"no file mapped in pid {pid} matches '{pattern}'")
        return _unique_real(hits)
    if pattern.strip("*") == "":
        raise ResolveError(f"target '{pattern}' needs a process (-p PID) to match against")
    hits = [os.path.realpath(path) for soname, path in _ldconfig_entries()
            if fnmatch.fnmatchcase(soname, pattern)]
    if not hits:
        raise ResolveError(f"no library in the linker cache matches '{pattern}'")
    return _unique_real(hits)


def _looks_like_library(name: str) -> bool:
    return name.startswith("lib") or ".so" in name


def _names_library(basename: str, name: str) -> bool:
    """Whether file `basename` is what `name` means: exact, or `libc` -> libc.so.6 or
    libc-2.31.so (but never libcap.so)."""
    return basename == name or basename.startswith((name + ".", name + "-"))


def _unique_real(paths: Iterable[str]) -> list[str]:
    """Paths in order, dropping later spellings of a file already listed."""
    seen: set[tuple[int, int]] = set()
    out: list[str] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _ld_cache_stamp() -> int:
    try:
        return os.stat(LD_SO_CACHE).st_mtime_ns
    except OSError:
        return 0


def _ldconfig_entries() -> tuple[tuple[str, str], ...]:
    """(soname, path) of x86-64 entries of the linker cache (`ldconfig -p`), in its order."""
    return _ldconfig_snapshot(_ld_cache_stamp())


@functools.lru_cache(maxsize=2)
def _ldconfig_snapshot(stamp: int) -> tuple[tuple[str, str], ...]:
    """`ldconfig -p` parsed once per version of the cache file (`stamp` is its mtime):
    resolving many probes must not fork ldconfig for each."""
    exe = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        out = subprocess.run([exe, "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ()
    entries = []
    for line in out.splitlines()[1:]:
        left, arrow, path = line.partition(" => ")
        if not arrow:
            continue
        soname, _, flags = left.strip().partition(" ")
        if "x86-64" in flags or "64bit" in flags:
            entries.append((soname, path.strip()))
    return tuple(entries)


def _library_paths(name: str) -> list[str]:
    """Real paths of the library `name`, best first: linker cache, then library dirs."""
    return list(_library_paths_at(name, _ld_cache_stamp()))


@functools.lru_cache(maxsize=256)
def _library_paths_at(name: str, stamp: int) -> tuple[str, ...]:
    """The lookup behind _library_paths, once per name and linker-cache version."""
    cached = [path for soname, path in _ldconfig_entries() if _names_library(soname, name)]
    # An exact soname beats a prefix match (libc.so.6 over libc.so.6.debug-ish names).
    cached.sort(key=lambda p: os.path.basename(p) != name)
    found = [os.path.realpath(p) for p in cached]
    if not found:
        for d in LIBRARY_DIRS:
            for p in sorted(glob.glob(os.path.join(glob.escape(d), glob.escape(name) + "*"))):
                if os.path.isfile(p) and _names_library(os.path.basename(p), name):
                    found.append(os.path.realpath(p))
    return tuple(p for p in _unique_real(found) if _is_elf(p))


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def shown_target(target: str, path: str) -> str:
    """The file of a probe as bpftrace spells it in `probe` and `-l`: a path as the user
    wrote it (relative stays relative, a symlink stays the symlink), a library name as the
    linker cache lists the file, a program name as found on PATH; `path` (the file
    opened) for wildcards and the -c/-p program's own executable."""
    if not target or is_glob(target):
        return path
    if "/" in target:
        return target
    return _shown_name(target, path, _ld_cache_stamp())


@functools.lru_cache(maxsize=256)
def _shown_name(target: str, path: str, stamp: int) -> str:
    """shown_target for a bare name, once per name, file and linker-cache version: a
    wildcard over a library asks for every one of its functions."""
    real = os.path.realpath(path)
    for soname, cached in _ldconfig_entries():
        if _names_library(soname, target) and os.path.realpath(cached) == real:
            return cached
    on_path = shutil.which(target)
    if on_path and os.path.realpath(on_path) == real:
        return os.path.abspath(on_path)
    return target if os.path.isfile(target) else path


def open_targets(target: str, pid: int | None) -> list[ElfFile]:
    """ElfFiles for a target; when a glob picked the files, non-ELF ones (linker scripts
    such as libc.so) are skipped rather than reported."""
    paths = find_targets(target, pid)
    if len(paths) == 1 or not is_glob(target):
        return [ElfFile.open(p) for p in paths]
    elfs = [ElfFile.open(p) for p in paths if _is_elf(p)]
    if not elfs:
        raise ResolveError(f"no ELF file matches '{target}'")
    return elfs


# -- uprobes --------------------------------------------------------------------------


def resolve_uprobe(
    target: str,
    func: str,
    offset: int = 0,
    address: int | None = None,
    pid: int | None = None,
    *,
    want_return: bool = False,
    unsafe: bool = False,
) -> list[Placement]:
    """Placements for `uprobe:TARGET:FUNC[+OFFSET]` or `uprobe:TARGET:ADDRESS`.

    `func` may be a glob; every matching defined function (aliases collapse onto one site)
    is placed, including zero-size ones, as bpftrace skips nothing. `FUNC+OFFSET` must lie
    inside the function and on an instruction boundary. `address` is a link-time vaddr in
    an executable PT_LOAD. A return probe (`want_return`) takes no offset. An IFUNC
    symbol's entry is probed where the process's relocations point (the implementation it
    really calls, see runtime.ifunc); `FUNC@resolver` probes the resolver itself.
    """
    if want_return and (offset or address is not None):
        raise ResolveError("a return probe goes on a function entry: no offset or address")
    if offset < 0:
        raise ResolveError(f"negative offset {offset} in '{func}{offset}'")
    elfs = open_targets(target, pid)
    if address is not None:
        return [_place_address(elf, address, unsafe) for elf in elfs]
    if not func:
        raise ResolveError("probe names no function and no address")
    line_spec = parse_line_spec(func)
    if line_spec is not None and not any(elf.match(func) for elf in elfs):
        if want_return or offset:
            raise ResolveError(f"'{func}' is a source line: no return probe or offset there")
        return [_place_line(elf, *line_spec) for elf in elfs]
    resolver = func.endswith(RESOLVER_SUFFIX)
    if resolver:
        func = func[: -len(RESOLVER_SUFFIX)]
    wildcard = is_glob(func)
    # One placement per site; its symbol is the matched alias the user would call it by
    # (`malloc`, not the internal `__GI___libc_malloc` that sorts first).
    by_site: dict[tuple[int, int, int], tuple[tuple[int, int, int, str], Placement]] = {}
    first_error: ResolveError | None = None
    maps_of: dict[int, list] = {}
    for elf in elfs:
        for sym in elf.match(func):
            try:
                if sym.kind == "ifunc" and not resolver and not offset:
                    placement = _place_ifunc(elf, sym, pid, maps_of)
                else:
                    placement = _place_function(elf, sym, offset)
            except ResolveError as e:
                if not wildcard:
                    raise
                first_error = first_error or e
                continue
            key = (placement.dev, placement.ino, placement.file_offset)
            rank = _alias_rank(sym)
            kept = by_site.get(key)
            if kept is None or rank < kept[0]:
                by_site[key] = (rank, placement)
    if by_site:
        return [placement for _, placement in by_site.values()]
    if first_error is not None:
        raise first_error
    raise ResolveError(_no_function_message(func, target, elfs))


def _alias_rank(sym: Symbol) -> tuple[int, int, int, str]:
    """Which of several matched names of one site to show: a global name before a local
    one, then the fewest leading underscores, then the shortest."""
    name = sym.name
    return (sym.binding != "global", len(name) - len(name.lstrip("_")), len(name), name)


def _no_function_message(func: str, target: str, elfs: list[ElfFile]) -> str:
    where = elfs[0].path if len(elfs) == 1 else f"any of the {len(elfs)} files of '{target}'"
    if is_glob(func):
        return f"no function matches '{func}' in {where}"
    names: set[str] = set()
    for elf in elfs:
        names.update(elf.names)
    close = difflib.get_close_matches(func, sorted(names), n=3, cutoff=0.7)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"no function '{func}' in {where}{hint}"


def _place_function(elf: ElfFile, sym: Symbol, offset: int) -> Placement:
    if sym.offset is None:
        raise ResolveError(f"function '{sym.name}' in {elf.path} has no bytes in the file")
    if offset:
        if sym.size == 0:
            raise ResolveError(f"cannot check '{sym.name}+{offset}' in {elf.path}: "
                               f"the function's size is unknown")
        if offset >= sym.size:
            raise ResolveError(f"offset +{offset} is outside '{sym.name}' ({sym.size} bytes) "
                               f"in {elf.path}")
        _check_boundary(elf, sym, sym.vaddr + offset)
    return Placement(
        path=elf.path, dev=elf.identity.dev, ino=elf.identity.ino,
        file_offset=sym.offset + offset, symbol=sym.name, sym_offset=offset,
        vaddr=sym.vaddr + offset,
    )


def _place_line(elf: ElfFile, file: str, line: int) -> Placement:
    """`"file.c:42"`: the first address of that line, from the DWARF line table."""
    # pyelftools' DWARF costs a third of a second to import: only source-line probes need it.
    from runtime.dwarf.debugfile import how_to_get, locate
    from runtime.dwarf.info import DebugInfo
    from runtime.dwarf.lines import find_line

    loc = locate(elf.path)
    if loc.path is None:
        raise ResolveError(how_to_get(loc))
    info = DebugInfo.open(loc.path)
    try:
        hit = find_line(info, file, line)
    finally:
        info.close()
    if hit.vaddr is None:
        near = ", ".join(str(n) for n in hit.nearest)
        raise ResolveError(f"line {line} of {file} has no code in {elf.path}"
                           + (f"; lines with code nearby: {near}" if near else
                              f"; {file} is not a source file of it"))
    placement = _place_address(elf, hit.vaddr)
    return placement


def _place_ifunc(elf: ElfFile, sym: Symbol, pid: int | None,
                 maps_of: dict[int, list] | None = None) -> Placement:
    """The implementation the resolver chose, named as the user called it."""
    impl = implementation(elf, sym, pid, maps_of)
    offset = elf.vaddr_to_offset(impl) if impl is not None else None
    if impl is None or offset is None:
        raise ResolveError(
            f"'{sym.name}' in {elf.path} is an IFUNC and no process at hand shows which "
            f"implementation it resolved to; probe a running process (-p/-c), or the "
            f"resolver itself as '{sym.name}{RESOLVER_SUFFIX}'")
    return Placement(path=elf.path, dev=elf.identity.dev, ino=elf.identity.ino,
                     file_offset=offset, symbol=sym.name, sym_offset=0, vaddr=impl)


def _check_boundary(elf: ElfFile, sym: Symbol, vaddr: int) -> None:
    """Refuse `vaddr` unless decoding `sym` from its start lands an instruction there."""
    from runtime.x86.decode import instruction_boundaries  # capstone: only offset probes

    starts = instruction_boundaries(elf.read_function_bytes(sym), sym.vaddr)
    if vaddr in set(starts):
        return
    where = f"{sym.name}+{vaddr - sym.vaddr}"
    if not starts or vaddr > starts[-1] + 15:
        # 15 bytes is the longest x86 instruction: past that, decoding stopped early.
        raise ResolveError(f"'{where}' in {elf.path}: cannot decode '{sym.name}' that far")
    raise ResolveError(f"'{where}' in {elf.path} is not on an instruction boundary")


def _place_address(elf: ElfFile, address: int, unsafe: bool = False) -> Placement:
    """An address probe: inside a sized function its instruction boundary is proven by
    decoding the function from its start; the start of a function is one by definition.
    Anywhere else (a stripped binary) nothing proves it, and an int3 in the middle of an
    instruction corrupts the program: refused, as bpftrace refuses it, unless `unsafe`."""
    seg = elf.executable_segment(address)
    if seg is None:
        raise ResolveError(f"address {address:#x} is not in an executable segment of {elf.path}")
    file_offset = address - seg.vaddr + seg.offset
    hit = elf.symbolize(address)
    symbol, sym_offset = hit if hit is not None else ("", 0)
    proven = hit is not None and not sym_offset
    if hit is not None and sym_offset:
        for sym in elf.functions_named(symbol):
            if sym.vaddr == address - sym_offset and sym.size:
                _check_boundary(elf, sym, address)
                proven = True
                break
    if not proven and not unsafe:
        raise ResolveError(
            f"cannot prove that {address:#x} in {elf.path} starts an instruction: no sized "
            "function symbol covers it (a stripped binary?); an address inside an "
            "instruction would corrupt the program. --unsafe places it anyway")
    return Placement(
        path=elf.path, dev=elf.identity.dev, ino=elf.identity.ino, file_offset=file_offset,
        symbol=symbol, sym_offset=sym_offset, vaddr=address, unproven=not proven,
    )


# -- USDT -----------------------------------------------------------------------------


def resolve_usdt(
    target: str, provider: str, name: str, pid: int | None = None
) -> list[UsdtPlacement]:
    """Placements for `usdt:TARGET:[PROVIDER:]NAME` (provider "" = any; both may be globs).
    A probe name used at several sites (an inlined function) yields one placement each."""
    elfs = open_targets(target, pid)
    out: list[UsdtPlacement] = []
    known: list[str] = []
    for elf in elfs:
        for probe in read_probes(elf.path):
            known.append(f"{probe.provider}:{probe.name}")
            if provider and not fnmatch.fnmatchcase(probe.provider, provider):
                continue
            if not fnmatch.fnmatchcase(probe.name, name):
                continue
            hit = elf.symbolize(probe.pc)
            symbol, sym_offset = hit if hit is not None else ("", 0)
            placement = Placement(
                path=elf.path, dev=elf.identity.dev, ino=elf.identity.ino,
                file_offset=probe.offset, symbol=symbol, sym_offset=sym_offset, vaddr=probe.pc,
            )
            out.append(UsdtPlacement(placement, probe))
    if out:
        return out
    spec = f"{provider}:{name}" if provider else name
    where = elfs[0].path if len(elfs) == 1 else f"any of the {len(elfs)} files of '{target}'"
    if not known:
        raise ResolveError(f"no USDT probes in {where}")
    hint = _usdt_hint(provider, name, known)
    raise ResolveError(f"no USDT probe '{spec}' in {where}{hint}")


def _usdt_hint(provider: str, name: str, known: list[str]) -> str:
    """'; did you mean P:N?' for the closest probe names (of the named provider when it
    exists, else of any), or a list of providers when the provider itself is wrong."""
    pairs = sorted({tuple(k.split(":", 1)) for k in known})
    providers = sorted({p for p, _ in pairs})
    if provider and not any(fnmatch.fnmatchcase(p, provider) for p in providers):
        close = difflib.get_close_matches(provider, providers, n=3, cutoff=0.6)
        return f"; did you mean provider {', '.join(close)}?" if close else ""
    scope = [(p, n) for p, n in pairs if not provider or fnmatch.fnmatchcase(p, provider)]
    close = difflib.get_close_matches(name, sorted({n for _, n in scope}), n=3, cutoff=0.7)
    hits = sorted(((p, n) for p, n in scope if n in close), key=lambda pn: close.index(pn[1]))
    spelled = [f"{p}:{n}" for p, n in hits]
    return f"; did you mean {', '.join(spelled)}?" if spelled else ""
