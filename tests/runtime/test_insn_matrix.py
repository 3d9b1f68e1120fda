"""End to end: the instruction matrix (tests/programs/insn_matrix.S) under the real runtime.

A probe on every probe-able site through the Session API; the program's output must equal
the uninstrumented run and every site must be hit exactly as often as the program says
(its .insn_matrix section). Placing a probe on a refused site must raise PlacementError
with the reason, and leave the program untouched.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
from programs.matrix_sites import REFUSED_REASONS, Site, read_sites

from runtime.context import HitContext
from runtime.errors import PlacementError
from runtime.resolve import resolve_uprobe
from runtime.session import Session


@pytest.fixture(scope="module", params=["pie", "no-pie"])
def program(request: pytest.FixtureRequest, builder) -> Path:
    return builder.build("insn_matrix.S", "-no-pie" if request.param == "no-pie" else "-pie")


@pytest.fixture(scope="module")
def expected_output(program: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("plain") / "out.txt"
    subprocess.run([str(program), str(out)], check=True, timeout=30)
    text = out.read_text()
    assert len(text.splitlines()) >= 80
    return text


@pytest.mark.timeout(120)
def test_every_site_probed_at_once(
    program: Path, expected_output: str, tmp_path: Path, reaper
) -> None:
    sites = [s for s in read_sites(program) if s.cls != "refused"]
    assert len(sites) >= 80
    out = tmp_path / "out.txt"
    hits: Counter[str] = Counter()
    wrong_rip: list[str] = []
    session = Session.spawn([str(program), str(out)])
    reaper.add(session.pid)
    with session:
        for site in sites:
            [placement] = resolve_uprobe(str(program), site.name)

            def handler(ctx: HitContext, site: Site = site) -> None:
                hits[site.name] += 1
                # The handler sees the thread at the site, not one past the int3.
                where = ctx.symbolize(ctx.regs.rip)
                if where not in site.aliases:
                    wrong_rip.append(f"{site.name}: {where}")

            session.add_probe(placement, handler, label=site.name)
        status = session.run()
    assert (status.code, status.signal) == (0, None), status.reason
    assert dict(hits) == {s.name: s.hits for s in sites}
    assert wrong_rip == []
    assert out.read_text() == expected_output


@pytest.mark.timeout(60)
def test_refused_sites_raise_placement_error(
    program: Path, expected_output: str, tmp_path: Path, reaper
) -> None:
    refused = [s for s in read_sites(program) if s.cls == "refused"]
    assert {s.name for s in refused} == set(REFUSED_REASONS)
    out = tmp_path / "out.txt"
    session = Session.spawn([str(program), str(out)])
    reaper.add(session.pid)
    with session:
        for site in refused:
            [placement] = resolve_uprobe(str(program), site.name)
            with pytest.raises(PlacementError) as err:
                session.add_probe(placement, lambda ctx: None, label=site.name)
            message = err.value.message
            assert REFUSED_REASONS[site.name] in message, message
            assert message.startswith("cannot probe 0x"), message
            assert "\n" not in message
        status = session.run()
    assert (status.code, status.signal) == (0, None), status.reason
    assert out.read_text() == expected_output
