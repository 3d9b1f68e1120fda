"""fork and vfork through the library API: exact hits per pid, children left untouched
when following is off, and return probes pending across a fork."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest
from programs.rt_support import placement, uninstrumented

from runtime.session import Session

pytestmark = pytest.mark.timeout(60)


def _spawn(prog: Path, args: list[str], tmp_path: Path, reaper, follow: bool):
    out = open(tmp_path / "out.txt", "w")  # noqa: SIM115 - closed by _output
    session = Session.spawn([str(prog), *args], stdout=out, follow_forks=follow)
    reaper.add(session.pid)
    return session, out


def _output(out, tmp_path: Path) -> str:
    out.close()
    return (tmp_path / "out.txt").read_text()


def _pids(text: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+) (\d+) ", text, re.M)}


def _same_but_pids(text: str, baseline: str) -> bool:
    strip = re.compile(r"^(\w+) \d+ ", re.M)
    return sorted(strip.sub(r"\1 ", text).splitlines()) == sorted(
        strip.sub(r"\1 ", baseline).splitlines())


@pytest.mark.parametrize("follow", [True, False])
def test_fork_counts_exact_per_pid(builder, reaper, tmp_path, follow):
    prog = builder.build("proc_fork.c", "-O1")
    session, out = _spawn(prog, ["plain", "150"], tmp_path, reaper, follow)
    hits = collections.Counter()
    session.add_probe(placement(prog, "work"), lambda c: hits.update([c.pid]))
    assert session.run().code == 0
    text = _output(out, tmp_path)
    assert _same_but_pids(text, uninstrumented([str(prog), "plain", "150"]).stdout)
    pids = _pids(text)
    assert pids["parent"] == session.pid
    # The child inherits the 150 calls made before the fork only as a sum, not as hits.
    want = {pids["parent"]: 300, pids["child"]: 300} if follow else {pids["parent"]: 300}
    assert dict(hits) == want


@pytest.mark.parametrize("follow", [True, False])
def test_fork_while_a_return_probe_is_pending(builder, reaper, tmp_path, follow):
    prog = builder.build("proc_fork.c", "-O1")
    session, out = _spawn(prog, ["ret", "40"], tmp_path, reaper, follow)
    rets: dict[int, list[int]] = collections.defaultdict(list)
    works = collections.Counter()
    session.add_probe(placement(prog, "forker"), lambda c: rets[c.pid].append(c.retval),
                      kind="return")
    session.add_probe(placement(prog, "work"), lambda c: works.update([c.pid]))
    status = session.run()
    text = _output(out, tmp_path)
    assert status.code == 0
    pids = _pids(text)
    assert _same_but_pids(text, uninstrumented([str(prog), "ret", "40"]).stdout)
    assert re.search(r"^child \d+ sum=820$", text, re.M)  # it did not die on the trampoline
    parent, child = pids["parent"], pids["child"]
    if follow:
        # The child returned through the trampoline with its copy of the pending return.
        assert dict(rets) == {parent: [child], child: [0]}
        assert dict(works) == {parent: 40, child: 40}
    else:
        # Its real return address was written back into its stack before it ran.
        assert dict(rets) == {parent: [child]}
        assert dict(works) == {parent: 40}
    assert "child=0" in text


@pytest.mark.parametrize("follow", [True, False])
def test_vfork_then_exec_keeps_the_parents_probes(builder, reaper, tmp_path, follow):
    prog = builder.build("proc_fork.c", "-O1")
    session, out = _spawn(prog, ["vfork", "60"], tmp_path, reaper, follow)
    hits = collections.Counter()
    session.add_probe(placement(prog, "work"), lambda c: hits.update([c.pid]))
    assert session.run().code == 0
    text = _output(out, tmp_path)
    assert _same_but_pids(text, uninstrumented([str(prog), "vfork", "60"]).stdout)
    pids = _pids(text)
    parent, child = pids["parent"], pids["leaf"]
    # The vfork child shares the parent's memory and stays traced until its exec (its one
    # call before the exec is seen either way); after the exec it is followed or let go.
    want = {parent: 120, child: 1 + 7} if follow else {parent: 120, child: 1}
    assert dict(hits) == want
    assert not session.engine.procs


def test_sh_c_chain_execs_are_followed(builder, reaper, tmp_path):
    prog = builder.build("proc_fork.c", "-O1")
    out = open(tmp_path / "out.txt", "w")  # noqa: SIM115
    session = Session.spawn(["sh", "-c", f"{prog} leaf 11; {prog} leaf 13"], stdout=out)
    reaper.add(session.pid)
    hits = collections.Counter()
    session.add_probe(placement(prog, "work"), lambda c: hits.update([c.pid]))
    assert session.run().code == 0
    text = _output(out, tmp_path)
    got = [(int(p), int(s)) for p, s in re.findall(r"^leaf (\d+) sum=(\d+)$", text, re.M)]
    assert [s for _, s in got] == [66, 91]
    assert dict(hits) == {got[0][0]: 11, got[1][0]: 13}
