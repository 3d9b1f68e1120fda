"""`uprobe -l` output: exact lines for programs and libraries built here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from programs.sym_process import running

from runtime.elfsyms import ElfFile
from runtime.errors import ResolveError
from runtime.listing import list_probes as list_query
from uplang.app.cli import listing_query

pytestmark = pytest.mark.timeout(60)

PYTHON = "/usr/bin/python3.11"


def list_probes(pattern: str, pid: int | None = None, verbose: bool = False) -> list[str]:
    """The listing as `uprobe -l PATTERN` drives it: the pattern read by the CLI."""
    return list_query(listing_query(pattern), pid, verbose)


@pytest.fixture(scope="module")
def prog(builder) -> Path:
    return builder.build("sym_funcs.c", "-O1")


@pytest.fixture(scope="module")
def lib(builder) -> Path:
    return builder.build("sym_lib.c", "-O1", shared=True)


@pytest.fixture(scope="module")
def usdt(builder) -> Path:
    return builder.build("usdt_probes.c", "-O1", "-DUSDT_SEMAPHORES")


def test_program_functions(prog: Path) -> None:
    assert list_probes(f"uprobe:{prog}:sym_*") == [
        f"uprobe:{prog}:sym_add",
        f"uprobe:{prog}:sym_alias",
        f"uprobe:{prog}:sym_loop",
        f"uprobe:{prog}:sym_static_helper",
        f"uprobe:{prog}:sym_weak",
    ]
    assert list_probes(f"uretprobe:{prog}:sym_l*") == [f"uretprobe:{prog}:sym_loop"]
    assert list_probes(f"uprobe:{prog}:sym_loop") == [f"uprobe:{prog}:sym_loop"]
    assert list_probes(f"uprobe:{prog}:nothing*") == []


def test_aliases_and_globs_list_like_the_long_spellings(prog: Path) -> None:
    """`uprobe -l 'u:libc:mallo?'` failed: listing parsed specs on its own."""
    assert list_probes(f"u:{prog}:sym_a?d") == [f"uprobe:{prog}:sym_add"]
    assert list_probes(f"ur:{prog}:sym_l*") == [f"uretprobe:{prog}:sym_loop"]
    assert list_probes(f"u:{prog}") == list_probes(f"uprobe:{prog}:*")
    assert list_probes(f"pid$target:{prog}:sym_loop:entry") == [f"uprobe:{prog}:sym_loop"]


def test_libc_glob_with_the_short_alias() -> None:
    lines = list_probes("u:libc:mallo?")
    assert lines and all(line.startswith("uprobe:") for line in lines)
    assert any(line.endswith(":malloc") for line in lines)


def test_program_verbose(prog: Path) -> None:
    elf = ElfFile.open(str(prog))
    loop, weak = elf.function("sym_loop"), elf.function("sym_weak")
    # With its parameters from DWARF (the programs are built with -g), as bpftrace -lv.
    assert list_probes(f"uprobe:{prog}:sym_[lw]*", verbose=True) == [
        f"uprobe:{prog}:sym_loop  [{loop.vaddr:#x}, {loop.size} bytes]\n    long int n",
        f"uprobe:{prog}:sym_weak  [{weak.vaddr:#x}, {weak.size} bytes weak]\n    int x",
    ]


def test_library_everything(lib: Path) -> None:
    lines = list_probes(str(lib))
    assert lines == sorted(f"uprobe:{lib}:{s.name}" for s in ElfFile.open(str(lib)).functions)
    assert {f"uprobe:{lib}:symlib_square", f"uprobe:{lib}:symlib_cube",
            f"uprobe:{lib}:symlib_bump"} <= set(lines)
    assert list_probes(f"uprobe:{lib}") == lines
    assert list_probes(f"uprobe:{lib}:symlib_*") == [
        f"uprobe:{lib}:symlib_bump", f"uprobe:{lib}:symlib_cube", f"uprobe:{lib}:symlib_square"]


def test_usdt_binary(usdt: Path) -> None:
    assert list_probes(f"usdt:{usdt}:*") == [
        f"usdt:{usdt}:usdtdemo:done",
        f"usdt:{usdt}:usdtdemo:start",
        f"usdt:{usdt}:usdtdemo:values",
    ]
    assert list_probes(f"usdt:{usdt}") == list_probes(f"usdt:{usdt}:usdtdemo:*")
    assert list_probes(f"usdt:{usdt}:usdtdemo:v*") == [f"usdt:{usdt}:usdtdemo:values"]
    assert list_probes(f"usdt:{usdt}:other:*") == []
    everything = list_probes(str(usdt))
    assert f"usdt:{usdt}:usdtdemo:start" in everything
    assert f"uprobe:{usdt}:usdt_work" in everything


def test_usdt_verbose(usdt: Path) -> None:
    from runtime.usdt import read_probes

    p = {x.name: x for x in read_probes(str(usdt))}
    assert list_probes(f"usdt:{usdt}:usdtdemo:*", verbose=True) == [
        f"usdt:{usdt}:usdtdemo:done  [{p['done'].pc:#x}, args: -8@-8(%rsp) "
        f"-8@usdt_global(%rip) -4@$-5, semaphore {p['done'].semaphore:#x}]",
        f"usdt:{usdt}:usdtdemo:start  [{p['start'].pc:#x}, args: no args, "
        f"semaphore {p['start'].semaphore:#x}]",
        f"usdt:{usdt}:usdtdemo:values  [{p['values'].pc:#x}, args: -8@%rdi -1@%sil -2@%dx "
        f"4@%ecx, semaphore {p['values'].semaphore:#x}]",
    ]


def test_process_wide_listing(prog: Path, lib: Path, reaper, tmp_path: Path) -> None:
    short = tmp_path / "libsymlist.so"
    shutil.copy(lib, short)
    with running([str(prog), str(short)], reaper) as p:
        lines = list_probes("*", p.pid)
        exe = os.path.realpath(prog)
        assert f"uprobe:{exe}:sym_loop" in lines
        assert f"uprobe:{short}:symlib_cube" in lines
        assert any(line.startswith("uprobe:") and ":malloc" in line for line in lines)
        assert lines == sorted(set(lines))
        assert list_probes("uprobe:libsymlist:symlib_c*", p.pid) == [
            f"uprobe:{short}:symlib_cube"]
        assert list_probes("uprobe::sym_lo*", p.pid) == [f"uprobe:{exe}:sym_loop"]
    with pytest.raises(ResolveError, match="needs a process"):
        list_probes("*", None)


def test_listing_a_big_program() -> None:
    """Its speed is measured in bench/lookup_costs.py."""
    if not os.path.exists(PYTHON):
        pytest.skip(f"{PYTHON} not installed")
    lines = list_probes(f"uprobe:{PYTHON}:PyObject_*")
    usdt = list_probes(f"usdt:{PYTHON}:python:*", verbose=True)
    everything = list_probes("libc", None)
    assert f"uprobe:{PYTHON}:PyObject_Malloc" in lines
    assert all(line.startswith(f"uprobe:{PYTHON}:PyObject_") for line in lines)
    assert any(line.startswith(f"usdt:{PYTHON}:python:function__entry  [") for line in usdt)
    assert any(line.endswith(":malloc") for line in everything)
