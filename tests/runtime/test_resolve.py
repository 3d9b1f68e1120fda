"""Resolution of probe specs against compiled programs, libraries and live processes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from programs.sym_process import running

from runtime.elfsyms import ElfFile
from runtime.errors import ResolveError, TargetError
from runtime.procmaps import read_maps
from runtime.resolve import Placement, find_targets, resolve_uprobe, resolve_usdt

pytestmark = pytest.mark.timeout(60)

PYTHON = "/usr/bin/python3.11"


def objdump_starts(path: Path, func: str) -> list[int]:
    """Instruction addresses of `func` as objdump disassembles it."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)],
                         capture_output=True, text=True, check=True).stdout
    starts, inside = [], False
    for line in out.splitlines():
        if line.endswith(f"<{func}>:"):
            inside = True
        elif inside and not line.strip():
            break
        elif inside and ":" in line:
            starts.append(int(line.split(":")[0], 16))
    return starts


def readelf_symbol(path: Path, name: str) -> tuple[int, int]:
    out = subprocess.run(["readelf", "-sW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f[-1:] == [name] and len(f) >= 8:
            return int(f[1], 16), int(f[2], 0)
    raise AssertionError(name)


@pytest.fixture(scope="module")
def prog(builder) -> Path:
    return builder.build("sym_funcs.c", "-O1", "-fPIE", "-pie")


@pytest.fixture(scope="module")
def lib(builder) -> Path:
    return builder.build("sym_lib.c", "-O1", shared=True)


# -- targets --------------------------------------------------------------------------


def test_paths(prog: Path, monkeypatch) -> None:
    assert find_targets(str(prog)) == [str(prog)]
    monkeypatch.chdir(prog.parent)
    assert find_targets(f"./{prog.name}") == [str(prog)]
    with pytest.raises(TargetError, match="no-such: no such file"):
        find_targets("/nonexistent/no-such")
    with pytest.raises(TargetError, match="not a regular file"):
        find_targets(str(prog.parent) + "/")


def test_path_glob(prog: Path, lib: Path) -> None:
    found = find_targets(str(prog.parent / "sym_*"))
    assert str(prog) in found and str(lib) in found and found == sorted(found)
    with pytest.raises(ResolveError, match="no file matches"):
        find_targets(str(prog.parent / "nothing-here-*"))


def test_library_short_names_agree_with_the_loader() -> None:
    """Our own process has libc mapped: the linker cache must name the same file."""
    maps = read_maps(os.getpid())
    libc = next(m.path for m in maps if os.path.basename(m.path).startswith("libc.so"))
    for spelling in ("libc", "libc.so.6"):
        (found,) = find_targets(spelling)
        assert os.path.samefile(found, libc)
        assert find_targets(spelling, os.getpid()) == [libc]
    (pthread,) = find_targets("libpthread")
    assert os.path.basename(os.path.realpath(pthread)).startswith("libpthread")
    with pytest.raises(ResolveError, match="no library 'libnosuchthing' found"):
        find_targets("libnosuchthing")


def test_library_glob_from_the_linker_cache() -> None:
    found = find_targets("libc.so*")
    assert any(os.path.basename(p) == "libc.so.6" for p in found)
    assert all(os.path.basename(p).startswith("libc.so") for p in found)


def test_main_executable_and_process_libraries(builder, prog: Path, lib: Path, reaper,
                                              tmp_path: Path) -> None:
    short = tmp_path / "libsymdemo.so.1"
    shutil.copy(lib, short)
    with running([str(prog), str(short)], reaper) as p:
        assert find_targets("", p.pid) == [os.path.realpath(prog)]
        assert find_targets("libsymdemo", p.pid) == [str(short)]
        assert find_targets("libsymdemo.so.1", p.pid) == [str(short)]
        assert find_targets("libsymde*", p.pid) == [str(short)]
        assert str(short) in find_targets("*", p.pid)
        # A library of the process resolves to the file the process mapped.
        (placement,) = resolve_uprobe("libsymdemo", "symlib_square", pid=p.pid)
        st = os.stat(short)
        assert (placement.dev, placement.ino) == (st.st_dev, st.st_ino)
        with pytest.raises(ResolveError, match="no file mapped in pid"):
            find_targets("libzzz*", p.pid)
    with pytest.raises(ResolveError, match="no process"):
        find_targets("")
    with pytest.raises(ResolveError, match="needs a process"):
        find_targets("*")


def test_program_on_path(prog: Path, tmp_path: Path, monkeypatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(prog, bindir / "symprog")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    assert find_targets("symprog") == [str(bindir / "symprog")]
    with pytest.raises(ResolveError, match="no library or program named 'symprog-nope'"):
        find_targets("symprog-nope")


# -- uprobes --------------------------------------------------------------------------


def test_function_entry(prog: Path) -> None:
    (p,) = resolve_uprobe(str(prog), "sym_loop")
    vaddr, _size = readelf_symbol(prog, "sym_loop")
    st = os.stat(prog)
    assert p == Placement(path=str(prog), dev=st.st_dev, ino=st.st_ino,
                          file_offset=ElfFile.open(str(prog)).vaddr_to_offset(vaddr),
                          symbol="sym_loop", sym_offset=0, vaddr=vaddr)


def test_offsets_on_and_off_instruction_boundaries(prog: Path) -> None:
    vaddr, size = readelf_symbol(prog, "sym_loop")
    starts = set(objdump_starts(prog, "sym_loop"))
    assert len(starts) > 3
    for off in range(size):
        if vaddr + off in starts:
            (p,) = resolve_uprobe(str(prog), "sym_loop", off)
            assert (p.vaddr, p.sym_offset, p.symbol) == (vaddr + off, off, "sym_loop")
            assert p.file_offset == ElfFile.open(str(prog)).vaddr_to_offset(vaddr + off)
        else:
            with pytest.raises(ResolveError, match="not on an instruction boundary"):
                resolve_uprobe(str(prog), "sym_loop", off)
    with pytest.raises(ResolveError, match=rf"offset \+{size} is outside 'sym_loop'"):
        resolve_uprobe(str(prog), "sym_loop", size)
    with pytest.raises(ResolveError, match="no offset or address"):
        resolve_uprobe(str(prog), "sym_loop", 4, want_return=True)


def test_misspelled_function_suggests(prog: Path) -> None:
    with pytest.raises(ResolveError) as err:
        resolve_uprobe(str(prog), "sym_lop")
    assert err.value.message == f"no function 'sym_lop' in {prog}; did you mean sym_loop?"
    with pytest.raises(ResolveError, match=r"^no function matches 'zz\*' in "):
        resolve_uprobe(str(prog), "zz*")


def test_libc_suggestion() -> None:
    with pytest.raises(ResolveError) as err:
        resolve_uprobe("libc", "mallc")
    assert err.value.message.startswith("no function 'mallc' in ")
    assert "did you mean malloc" in err.value.message


def test_wildcards_and_aliases(prog: Path) -> None:
    placements = resolve_uprobe(str(prog), "sym_*")
    names = {p.symbol for p in placements}
    # sym_alias is sym_add's second name: one site, reported under the preferred name.
    assert names == {"sym_add", "sym_static_helper", "sym_weak", "sym_loop"}
    assert len({p.file_offset for p in placements}) == len(placements)
    (alias,) = resolve_uprobe(str(prog), "sym_alias")
    (add,) = resolve_uprobe(str(prog), "sym_add")
    assert alias.file_offset == add.file_offset and alias.symbol == "sym_alias"
    assert [p.symbol for p in resolve_uprobe(str(prog), "sym_w?ak")] == ["sym_weak"]


def test_wildcard_with_offset_keeps_valid_sites(prog: Path) -> None:
    loop_vaddr, _ = readelf_symbol(prog, "sym_loop")
    second = sorted(objdump_starts(prog, "sym_loop"))[1] - loop_vaddr
    got = resolve_uprobe(str(prog), "sym_lo*", second)
    assert [(p.symbol, p.sym_offset) for p in got] == [("sym_loop", second)]


def test_raw_addresses(prog: Path) -> None:
    vaddr, _ = readelf_symbol(prog, "sym_loop")
    starts = sorted(objdump_starts(prog, "sym_loop"))
    (p,) = resolve_uprobe(str(prog), "", address=starts[2])
    assert (p.symbol, p.sym_offset, p.vaddr) == ("sym_loop", starts[2] - vaddr, starts[2])
    with pytest.raises(ResolveError, match="not on an instruction boundary"):
        resolve_uprobe(str(prog), "", address=starts[2] + 1)
    data, _ = readelf_symbol(prog, "sym_counter")
    with pytest.raises(ResolveError, match="not in an executable segment"):
        resolve_uprobe(str(prog), "", address=data)


def test_glob_target_skips_non_elf(prog: Path, tmp_path: Path) -> None:
    shutil.copy(prog, tmp_path / "a.bin")
    (tmp_path / "b.bin").write_text("INPUT(-lc)\n")  # a linker script, like libc.so
    (p,) = resolve_uprobe(str(tmp_path / "*.bin"), "sym_loop")
    assert p.path == str(tmp_path / "a.bin")
    with pytest.raises(TargetError, match="is not an ELF file"):
        resolve_uprobe(str(tmp_path / "b.bin"), "x")


def test_many_wildcard_probes_on_python_resolve() -> None:
    """Their speed is measured in bench/lookup_costs.py."""
    if not os.path.exists(PYTHON):
        pytest.skip(f"{PYTHON} not installed")
    elf = ElfFile.open(PYTHON)
    prefixes = sorted({name[:6] for name in elf.names if name[:1].isalpha()})
    patterns = [prefixes[i % len(prefixes)] + "*" for i in range(1000)]
    found = [resolve_uprobe(PYTHON, pat) for pat in patterns]
    assert sum(len(f) for f in found) >= 1000
    assert all(pl.symbol.startswith(pat[:-1]) for pat, f in zip(patterns, found, strict=True)
               for pl in f)


# -- USDT -----------------------------------------------------------------------------


def test_usdt(builder) -> None:
    prog = builder.build("usdt_probes.c", "-O1", "-DUSDT_SEMAPHORES")
    got = resolve_usdt(str(prog), "usdtdemo", "values")
    assert len(got) == 1
    (u,) = got
    assert u.probe.name == "values" and u.placement.file_offset == u.probe.offset
    assert u.placement.symbol == "usdt_work" and u.semaphore_offset == u.probe.semaphore_offset
    assert u.placement.vaddr == u.probe.pc
    assert [x.probe.name for x in resolve_usdt(str(prog), "", "*")] == ["start", "values", "done"]
    assert [x.probe.name for x in resolve_usdt(str(prog), "usdt*", "d*")] == ["done"]
    with pytest.raises(ResolveError) as err:
        resolve_usdt(str(prog), "usdtdemo", "vaules")
    assert err.value.message == (f"no USDT probe 'usdtdemo:vaules' in {prog}; "
                                 "did you mean usdtdemo:values?")
    with pytest.raises(ResolveError, match="no USDT probes in"):
        resolve_usdt(str(builder.build("sym_lib.c", "-O1", shared=True)), "", "x")


def test_python_usdt() -> None:
    if not os.path.exists(PYTHON):
        pytest.skip(f"{PYTHON} not installed")
    got = resolve_usdt(PYTHON, "python", "function__*")
    assert sorted(u.probe.name for u in got) == ["function__entry", "function__return"]
    assert all(u.semaphore_offset for u in got)
