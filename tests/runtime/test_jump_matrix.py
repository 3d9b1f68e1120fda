"""The instruction matrix (tests/programs/insn_matrix.S) on the jump path.

Every site that eligibility accepts is patched with a jmp into a trampoline (with the
stand-in in-target program counting hits per site); the program's output must equal the
uninstrumented run and every patched site must count exactly its hits. Sites refused for
the jump path must say why, and the classes the trampoline relocates must all appear
among the patched sites.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from programs.jump_fake import ENTRY_HITS, fake_program, word
from programs.matrix_sites import function_extent, read_sites

from runtime.elfsyms import ElfFile
from runtime.jump import sites as jsites
from runtime.jump.eligible import FunctionCode, check_site
from runtime.procmaps import read_maps
from runtime.session import Session

# Classes that must be exercised on the jump path somewhere in the matrix.
JUMP_CLASSES = {"plain", "rip_relative", "nop", "call_rel", "call_indirect", "jmp_indirect"}


@pytest.fixture(scope="module", params=["pie", "no-pie"])
def matrix(request: pytest.FixtureRequest, builder) -> Path:
    return builder.build("insn_matrix.S", "-no-pie" if request.param == "no-pie" else "-pie")


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory):
    return fake_program(tmp_path_factory.mktemp("fake"))


@pytest.mark.timeout(180)
def test_matrix_on_the_jump_path(matrix: Path, program, tmp_path: Path, reaper) -> None:
    expected_out = tmp_path / "plain.txt"
    subprocess.run([str(matrix), str(expected_out)], check=True, timeout=30)
    sites = [s for s in read_sites(matrix) if s.cls != "refused"]
    out = tmp_path / "out.txt"
    session = Session.spawn([str(matrix), str(out)])
    reaper.add(session.pid)
    jumped: dict[str, tuple[int, str]] = {}
    refused: dict[str, str] = {}
    with session:
        proc = session.engine.procs[session.pid]
        bias = ElfFile.open(str(matrix)).load_bias(session.pid, read_maps(session.pid)) or 0
        state = None
        for n, site in enumerate(sites, start=1):
            name, start, end = function_extent(matrix, site.vaddr)
            func = FunctionCode(name, start + bias, proc.mem.read(start + bias, end - start))
            addr = site.vaddr + bias
            verdict = check_site(proc.mem.read(addr, 64), addr, func)
            if verdict.site is None:
                assert verdict.reason, site.name
                refused[site.name] = verdict.reason
                continue
            if state is None:
                state = jsites.open_state(session.engine, proc, program, addr)
            try:
                jsites.place(session.engine, proc, state, program, verdict.site, n, True,
                             False)
            except jsites.SiteConflict as e:
                refused[site.name] = e.message
                continue
            jumped[site.name] = (n, site.cls)
        status = session.run()
    assert (status.code, status.signal) == (0, None), status.reason
    assert out.read_text() == expected_out.read_text()
    assert state is not None
    by_name = {s.name: s for s in sites}
    counts = {name: word(state.shm.view, ENTRY_HITS + 8 * n) for name, (n, _c) in jumped.items()}
    assert counts == {name: by_name[name].hits for name in jumped}
    assert JUMP_CLASSES <= {cls for _n, cls in jumped.values()}, refused
    assert len(jumped) >= 30, refused
