"""Which sites take the jump path, from the programs' own bytes: every refusal has a
reason naming the cause, and the flags analysis tells live flags from dead ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from programs.matrix_sites import REFUSED_REASONS, function_extent, read_sites

from runtime.elfsyms import ElfFile
from runtime.jump.eligible import FunctionCode, check_site


def _verdict(path: Path, site: str, func: str | None = None, matrix: bool = False):
    elf = ElfFile.open(str(path))
    f = elf.function(func or site)
    assert f is not None and f.offset is not None
    at = elf.symbol_vaddr(site) or f.vaddr
    end = f.size
    if matrix:
        _name, start, stop = function_extent(path, at)
        end = stop - start
    code = FunctionCode(f.name, f.vaddr, elf.read(f.offset, end)) if end else None
    return check_site(elf.read(f.offset + at - f.vaddr, 64), at, code)


@pytest.fixture(scope="module")
def work(builder) -> Path:
    return builder.build("jump_work.c", "-O2", "-pthread")


@pytest.fixture(scope="module")
def matrix(builder) -> Path:
    return builder.build("insn_matrix.S", "-no-pie")


def test_function_entries_have_dead_flags(work: Path) -> None:
    v = _verdict(work, "work")
    assert v.site is not None, v.reason
    assert not v.site.flags_live
    assert v.site.covered >= 5


def test_flags_read_after_the_site_are_live(work: Path) -> None:
    v = _verdict(work, "flagsy_site", "flagsy")
    assert v.site is not None, v.reason
    assert v.site.flags_live


def test_jump_table_is_refused(builder) -> None:
    for flags in (("-fno-pic", "-no-pie"), ("-fpie", "-pie")):
        exe = builder.build("jump_switch.c", "-O2", *flags)
        v = _verdict(exe, "pick")
        assert v.site is None
        assert "table whose targets cannot be bounded" in v.reason, v.reason
        assert v.reason.startswith("an indirect jump at pick+")


def test_branch_into_the_patched_bytes(matrix: Path) -> None:
    # m_jcc_o loops back to the instruction right after its site.
    v = _verdict(matrix, "site_jcc_o", "m_jcc_o", matrix=True)
    assert v.site is None
    assert v.reason.startswith("a branch at m_jcc_o+"), v.reason
    assert v.reason.endswith("lands inside the patched bytes")


def test_unknown_function_size_is_refused(matrix: Path) -> None:
    v = _verdict(matrix, "site_rip_load", "m_rip_load")
    assert v.site is None
    assert "no known size" in v.reason


@pytest.mark.parametrize("name", sorted(REFUSED_REASONS))
def test_refused_instructions_say_why(matrix: Path, name: str) -> None:
    [site] = [s for s in read_sites(matrix) if s.name == name]
    func = name.replace("site_rej_", "r_")
    v = _verdict(matrix, name, func, matrix=True)
    assert v.site is None
    assert REFUSED_REASONS[name] in v.reason, v.reason
    assert v.reason.startswith("the instruction at +0 ("), v.reason
    assert site.vaddr
