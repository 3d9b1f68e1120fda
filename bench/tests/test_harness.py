"""The benchmark harness measures what it claims: the raw tracer and the library driver see
every call, the probed instruction is the one objdump shows, the per-hit arithmetic and
the profile reading are right. Run: python3 -m pytest -q -p no:cacheprovider bench/tests
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

import hotpath_profile  # noqa: E402
from measure import Outcome, RunFailed, loop_ns, run  # noqa: E402
from programs import Programs, build  # noqa: E402
from trappath import Case, CaseResult, per_hit_us, spread_us  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> Programs:
    return build(tmp_path_factory.mktemp("bench"))


def _sum(calls: int) -> int:
    return calls * (calls + 1) // 2


def test_probed_instruction_is_objdumps(progs: Programs) -> None:
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(progs.target)],
                         capture_output=True, text=True, check=True).stdout
    body = out.split("<bench_fn>:\n", 1)[1].splitlines()
    addrs = [int(m.group(1), 16) for ln in body[:2] if (m := re.match(r"\s*([0-9a-f]+):", ln))]
    assert addrs[0] == progs.site_vaddr
    assert addrs[1] - addrs[0] == progs.site_len
    assert progs.site_text.startswith(body[0].split("\t")[-1].split()[0])


@pytest.mark.parametrize("pin", [[], ["-c", "0"]])
def test_raw_tracer_sees_every_call(progs: Programs, pin: list[str]) -> None:
    calls = 3000
    out = run([str(progs.raw_tracer), *pin, hex(progs.site_vaddr), str(progs.site_len),
               str(progs.target), str(calls)], timeout=60)
    assert out.returncode == 0
    assert f"hits {calls}" in out.stderr
    assert loop_ns(out, calls) > 0


def test_library_driver_counts_every_call(progs: Programs) -> None:
    calls = 500
    out = run([sys.executable, str(BENCH / "lib_driver.py"), str(progs.target), str(calls)],
              timeout=60)
    assert f"count {calls}" in out.stderr, out.stderr
    assert loop_ns(out, calls) > 0


def test_instrumented_cli_times_every_hit(progs: Programs, tmp_path: Path) -> None:
    calls = 400
    dest = tmp_path / "steps.json"
    out = run([sys.executable, str(BENCH / "hotpath_timing.py"), str(dest), "-q", "-e",
               f"uprobe:{progs.target}:bench_fn {{ @c = count(); }}",
               "-c", f"{progs.target} {calls}"], timeout=60, cwd=str(BENCH.parent))
    assert f"@c: {calls}" in out.stdout, out.stderr
    steps = json.loads(dest.read_text())["steps"]
    assert steps["handler"][0] == calls
    # count() reads no register: per hit one PEEKUSER and one POKEUSER of rip (a
    # copy-and-jump site) and one CONT, plus the few of spawning and detaching; GETREGS
    # and SETREGS only there.
    for name in ("ptrace PEEKUSER", "ptrace POKEUSER", "ptrace CONT"):
        assert calls <= steps[name][0] <= calls + 20
    for name in ("ptrace GETREGS", "ptrace SETREGS"):
        assert steps.get(name, [0])[0] <= 20


def test_ptrace_cost_reports_each_request(progs: Programs) -> None:
    out = subprocess.run([str(progs.ptrace_cost), "2000"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    values = dict(line.split() for line in out.splitlines())
    assert set(values) == {"getregs", "setregs", "waitpid_nohang", "peekuser_rip",
                           "pokeuser_rip"}
    assert all(float(v) > 0 for v in values.values())


def _outcome(stdout: str) -> Outcome:
    return Outcome(stdout, "", 0, 1.0, 0.5, 1000)


def test_loop_time_requires_the_right_sum() -> None:
    assert loop_ns(_outcome(f"{_sum(10)} 777\n"), 10) == 777
    with pytest.raises(RunFailed, match="computed"):
        loop_ns(_outcome(f"{_sum(10) + 1} 777\n"), 10)
    with pytest.raises(RunFailed, match="no target line"):
        loop_ns(_outcome("garbage\n"), 10)


def test_per_hit_subtracts_the_scaled_baseline() -> None:
    base = CaseResult(Case("no probe", "none", "unpinned", [], 1000, baseline=True),
                      loop_ns=[2000, 4000, 3000])
    probed = CaseResult(Case("x", "raw", "unpinned", [], 100),
                        loop_ns=[1_000_300, 9_000_300, 2_000_300])
    # median 2_000_300 minus baseline 3 ns/call * 100 calls, over 100 calls, in us.
    assert per_hit_us(probed, base) == pytest.approx(20.0)
    assert spread_us(probed) == pytest.approx((10.003, 90.003))


def test_profile_reading_attributes_categories(tmp_path: Path) -> None:
    # A stand-in for the engine's source: categories come from the sampled lines' text.
    src = tmp_path / "engine.py"
    src.write_text("tid, status = waitpid(-1, FLAGS)\nif fast(PTRACE_GETREGS, tid) == -1:\n")
    loop = f"thread (1);main (x.py:1);Engine.run ({src}:1)"
    trap = f"thread (1);main (x.py:1);Engine.run ({src}:9);Engine.dispatch ({src}:9)"
    raw = "\n".join([
        f"{loop} 60",
        f"{trap};Engine._on_trap ({src}:2) 10",
        f"{trap};Session._caller.<locals>.call ({src}:9);clause_0 (<h>:2) 30",
        "thread (2);EffectRunner.run (runtime/effects.py:1) 500",
    ])
    total, cats, lines = hotpath_profile.analyse(raw, per_hit_us=10.0)
    assert total == 100
    got = {name.split(" ")[0]: (share, us) for name, share, us in cats}
    assert got["waitpid"] == pytest.approx((0.6, 6.0))
    assert got["PTRACE_GETREGS"] == pytest.approx((0.1, 1.0))
    assert got["handler"] == pytest.approx((0.3, 3.0))
    assert lines[0].source.startswith("tid, status = waitpid")


def test_profile_reading_knows_the_inlined_requests(tmp_path: Path) -> None:
    # Engine.run names its requests by locals: `fast(pokeuser, ...)`.
    src = tmp_path / "engine.py"
    src.write_text("rip = fast(peekuser, tid, rip_offset, 0)\n"
                   "if fast(pokeuser, tid, rip_offset, bp.slot_word) == -1:\n")
    loop = f"thread (1);main (x.py:1);Engine.run ({src}"
    raw = f"{loop}:1) 3\n{loop}:2) 1"
    total, cats, _ = hotpath_profile.analyse(raw, per_hit_us=4.0)
    assert total == 4
    got = {name: us for name, _, us in cats}
    assert got == {"PTRACE_PEEKUSER": pytest.approx(3.0), "PTRACE_POKEUSER": pytest.approx(1.0)}
