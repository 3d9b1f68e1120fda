"""ElfFile against readelf's view of the same files, and load bias against live processes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from programs.sym_process import running

from runtime import debugsyms, elfsyms
from runtime.elfsyms import ElfFile, SymbolCache, load_bias
from runtime.errors import TargetError
from runtime.procmaps import read_maps

pytestmark = pytest.mark.timeout(60)

PYTHON = "/usr/bin/python3.11"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


def readelf_functions(path: Path) -> set[tuple[str, int, int]]:
    """(name, value, size) of defined FUNC/IFUNC symbols in .symtab and .dynsym."""
    out = subprocess.run(["readelf", "-sW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    found = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0].endswith(":") and f[3] in ("FUNC", "IFUNC") and f[6] != "UND":
            value, size = int(f[1], 16), int(f[2], 0)
            if value:
                found.add((f[7].split("@")[0], value, size))
    return found


def readelf_sections(path: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (addr, offset, size) from `readelf -SW`."""
    out = subprocess.run(["readelf", "-SW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    sections = {}
    for line in out.splitlines():
        if "]" not in line or line.lstrip().startswith("[Nr]"):
            continue
        f = line.split("]", 1)[1].split()
        if len(f) >= 5 and f[0].startswith("."):
            sections[f[0]] = (int(f[2], 16), int(f[3], 16), int(f[4], 16))
    return sections


@pytest.fixture(scope="module", params=["-pie", "-no-pie"])
def prog(builder, request) -> Path:
    pic = "-fPIE" if request.param == "-pie" else "-fno-pie"
    path = builder.build("sym_funcs.c", "-O2", pic, request.param)
    assert ElfFile.open(str(path)).is_pie == (request.param == "-pie")
    return path


def test_functions_match_readelf(prog: Path) -> None:
    elf = ElfFile.open(str(prog))
    expected = readelf_functions(prog)
    got = {(s.name, s.vaddr, s.size) for s in elf.functions}
    assert got == expected
    # Aliases stay: both names, one address.
    add, alias = elf.function("sym_add"), elf.function("sym_alias")
    assert add is not None and alias is not None and add.vaddr == alias.vaddr
    assert elf.function("sym_weak").binding == "weak"
    assert elf.function("sym_static_helper").binding == "local"
    assert elf.function("no_such_function") is None


def test_library_functions_match_readelf(builder) -> None:
    lib = builder.build("sym_lib.c", "-O1", shared=True)
    elf = ElfFile.open(str(lib))
    assert {(s.name, s.vaddr, s.size) for s in elf.functions} == readelf_functions(lib)
    assert elf.is_pie
    assert [s.name for s in elf.match("symlib_*")] == ["symlib_bump", "symlib_cube",
                                                         "symlib_square"]


def test_header_facts(prog: Path) -> None:
    elf = ElfFile.open(str(prog))
    out = subprocess.run(["readelf", "-hW", str(prog)], capture_output=True, text=True,
                         check=True).stdout
    entry = next(int(line.split()[-1], 16) for line in out.splitlines() if "Entry point" in line)
    kind = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("Type:"))
    assert elf.entry == entry
    assert elf.is_pie == (kind == "DYN")


def test_addresses_and_offsets_follow_sections(prog: Path) -> None:
    elf = ElfFile.open(str(prog))
    for name, (addr, offset, size) in readelf_sections(prog).items():
        if name not in (".text", ".data", ".rodata") or not addr:
            continue
        for delta in (0, size // 2, size - 1):
            assert elf.vaddr_to_offset(addr + delta) == offset + delta, name
            assert elf.offset_to_vaddr(offset + delta) == addr + delta, name
    add = elf.function("sym_add")
    text_addr, text_off, _ = readelf_sections(prog)[".text"]
    assert add.offset == add.vaddr - text_addr + text_off
    raw = prog.read_bytes()
    assert elf.read_function_bytes(add) == raw[add.offset : add.offset + add.size]
    assert elf.executable_segment(add.vaddr) is not None
    data_addr = readelf_sections(prog)[".data"][0]
    assert elf.executable_segment(data_addr) is None
    beyond = max(seg.vaddr + seg.memsz for seg in elf.segments) + 0x1000
    assert elf.vaddr_to_offset(beyond) is None and elf.offset_to_vaddr(len(raw) + 1) is None
    assert elf.symbol_vaddr("sym_counter") == next(
        int(line.split()[1], 16)
        for line in subprocess.run(["readelf", "-sW", str(prog)], capture_output=True,
                                   text=True, check=True).stdout.splitlines()
        if line.split()[-1:] == ["sym_counter"])


def test_symbolize_every_byte(prog: Path) -> None:
    elf = ElfFile.open(str(prog))
    for sym in elf.functions:
        if not sym.size:
            continue
        for k in range(sym.size):
            name, off = elf.symbolize(sym.vaddr + k)
            owner = elf.function(name)
            assert owner.vaddr + off == sym.vaddr + k and off < owner.size
    add = elf.function("sym_add")
    # Of two aliases the global, then alphabetical, name is reported.
    assert elf.symbolize(add.vaddr + 2) == ("sym_add", 2)
    assert elf.symbolize(0) is None
    assert elf.symbolize(readelf_sections(prog)[".data"][0]) is None


def test_not_elf_and_missing(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(TargetError, match=r"notes.txt is not an ELF file$"):
        ElfFile.open(str(text))
    with pytest.raises(TargetError, match="no such file"):
        ElfFile.open(str(tmp_path / "missing"))
    with pytest.raises(TargetError, match="is a directory, not an ELF file"):
        ElfFile.open(str(tmp_path))


def test_cache_follows_file_identity(builder, tmp_path: Path) -> None:
    a = builder.build("sym_funcs.c", "-O1")
    b = builder.build("sym_lib.c", "-O1", shared=True)
    target = tmp_path / "victim"
    shutil.copy(a, target)
    first = ElfFile.open(str(target))
    assert ElfFile.open(str(target)) is first
    cache = SymbolCache()
    assert cache.get(str(target)) is first
    shutil.copy(b, target)  # new size and mtime: a new identity
    second = ElfFile.open(str(target))
    assert second is not first and second.function("symlib_cube") is not None
    assert cache.get(str(target)) is second


@pytest.mark.parametrize("pie", ["-pie", "-no-pie"])
def test_load_bias_matches_runtime_addresses(builder, reaper, pie: str) -> None:
    exe = builder.build("sym_funcs.c", "-O1", "-fPIE" if pie == "-pie" else "-fno-pie", pie)
    lib = builder.build("sym_lib.c", "-O1", shared=True)
    with running([str(exe), str(lib)], reaper) as p:
        add_addr, square_addr = (int(v.split("=")[1], 16) for v in p.lines[0].split())
        maps = read_maps(p.pid)
        elf, lelf = ElfFile.open(str(exe)), ElfFile.open(str(lib))
        bias = load_bias(elf, p.pid, maps)
        assert bias is not None and bias + elf.function("sym_add").vaddr == add_addr
        if pie == "-no-pie":
            assert bias == 0
        assert elf.load_bias(p.pid) == bias
        assert load_bias(lelf, p.pid) + lelf.function("symlib_square").vaddr == square_addr
        cache = SymbolCache()
        assert cache.symbolize(maps, add_addr) == "sym_add"
        assert cache.symbolize(maps, square_addr + 3) == "symlib_square+3"
        assert cache.symbolize(maps, 0x10) == "0x10"
    other = ElfFile.open(str(builder.build("sym_lib.c", "-O2", shared=True)))
    assert load_bias(other, os.getpid()) is None


def test_stripped_binary_uses_build_id_debug_file(builder, tmp_path: Path, monkeypatch) -> None:
    exe = builder.build("sym_funcs.c", "-O1", "-Wl,--build-id")
    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "-o", str(stripped), str(exe)], check=True)
    assert ElfFile.open(str(stripped)).function("sym_static_helper") is None
    build_id = ElfFile.open(str(stripped)).build_id
    debug = tmp_path / "debug" / ".build-id" / build_id[:2] / (build_id[2:] + ".debug")
    debug.parent.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(debug)], check=True)
    monkeypatch.setenv(debugsyms.ROOTS_ENV, str(tmp_path / "debug"))
    os.utime(stripped, ns=(1, 1))  # a new identity, so the cached load is not reused
    elf = ElfFile.open(str(stripped))
    helper = elf.function("sym_static_helper")
    assert helper is not None and helper.offset is not None
    assert {(s.name, s.vaddr, s.size) for s in elf.functions} == readelf_functions(exe)


@pytest.mark.parametrize("path", [PYTHON, LIBC])
def test_big_files_load_and_symbolize_every_function(path: str) -> None:
    """Their speed is measured in bench/lookup_costs.py."""
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed")
    elfsyms._load.cache_clear()
    elf = ElfFile.open(path)
    assert len(elf.functions) > 1000
    for sym in elf.functions:
        assert elf.symbolize(sym.vaddr) is not None
