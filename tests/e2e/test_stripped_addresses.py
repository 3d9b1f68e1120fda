"""Address probes in a stripped binary: nothing proves where its instructions start, and an
int3 inside an instruction corrupts the program. Refused before the program runs (as
bpftrace refuses them), placed with a warning under --unsafe."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stripped(builder, tmp_path_factory):
    """named_threads.c stripped, and the link-time address of `tick` in it (read from the
    unstripped build: stripping moves no code)."""
    from runtime.elfsyms import ElfFile

    built = builder.build("named_threads.c", "-O1", "-pthread")
    where = tmp_path_factory.mktemp("stripped") / "prog"
    shutil.copy(built, where)
    subprocess.run(["strip", "--strip-all", str(where)], check=True)
    return where, ElfFile.open(str(built)).symbol_vaddr("tick")


def test_an_unprovable_address_is_refused_before_the_program_runs(uprobe, stripped):
    prog, tick = stripped
    r = uprobe.run("-e", f"uprobe:{prog}:{tick + 1:#x} {{ @ = count(); }}", "-c", str(prog))
    assert r.returncode == 2
    assert r.stdout == ""  # the program never ran
    assert f"cannot prove that {tick + 1:#x}" in r.stderr and "--unsafe" in r.stderr
    assert "Traceback" not in r.stderr


def test_even_a_real_instruction_start_needs_unsafe_without_symbols(uprobe, stripped):
    prog, tick = stripped
    r = uprobe.run("-e", f"uprobe:{prog}:{tick:#x} {{ @ = count(); }}", "-c", str(prog))
    assert r.returncode == 2 and "cannot prove" in r.stderr


def test_unsafe_places_it_with_a_warning(uprobe, stripped):
    prog, tick = stripped
    r = uprobe.run("--unsafe", "-e", f"uprobe:{prog}:{tick:#x} {{ @ = count(); }}",
                   "-c", str(prog))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"
    assert "@: 2" in r.out  # tick runs once in each of the program's two threads
    assert f"nothing proves {tick:#x} starts an instruction" in r.stderr
