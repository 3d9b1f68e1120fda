"""The executor without a target process: BEGIN, interval timers of its own, exit(), END,
the final map dump and -o, through run_plan exactly as the CLI calls it."""

from __future__ import annotations

import dataclasses

import pytest

from runtime.executor import ExecutorError, RunOptions, run_plan
from uplang.checks import CheckOptions
from uplang.parser import parse
from uplang.plan import Plan, PlanClause, PlanProbe
from uplang.planner import compile_script

KINDS = {"BEGIN": "begin", "END": "end"}


def plan_of(text: str) -> Plan:
    prog = parse(text, "t.up")
    probes, clauses = [], []
    for i, c in enumerate(prog.clauses):
        spec = c.probes[0]
        period = spec.value * {"ms": 1_000_000, "s": 1_000_000_000}.get(spec.unit, 0)
        probes.append(PlanProbe(i, i, KINDS.get(spec.provider, spec.provider), spec.raw,
                                period_ns=period))
        clauses.append(PlanClause(i, (i,), c.predicate, c.body, c.sync))
    return Plan(tuple(probes), tuple(clauses))


def options(**kw) -> RunOptions:
    base = dict(command=None, pid=None, fmt="text", output=None, quiet=True, unsafe=False,
                debug=False, follow_forks=True, verbose=False)
    return RunOptions(**{**base, **kw})


def test_run_options_are_the_cli_contract() -> None:
    names = [f.name for f in dataclasses.fields(RunOptions)]
    assert names == ["command", "pid", "fmt", "output", "quiet", "unsafe", "debug",
                     "follow_forks", "verbose", "cpu", "trap", "demangle", "trace", "comms"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        options().quiet = False  # type: ignore[misc]


@pytest.mark.timeout(30)
def test_intervals_exit_and_end_without_a_target(tmp_path) -> None:
    out = tmp_path / "out.txt"
    plan = plan_of('BEGIN { printf("begin\\n"); } interval:ms:20 { @ticks = count(); } '
                   "interval:ms:150 { exit(); } END { printf(\"end %d\\n\", @ticks > 2); }")
    assert run_plan(plan, options(output=str(out))) == 0
    text = out.read_text()
    assert text.startswith("begin\nend 1\n\n\n@ticks: ")
    assert 3 <= int(text.rsplit(": ", 1)[1]) <= 8


def test_json_attached_line_and_maps(tmp_path) -> None:
    out = tmp_path / "out.json"
    plan = plan_of("BEGIN { @x[1, \"a\"] = 5; exit(); }")
    assert run_plan(plan, options(output=str(out), fmt="json", quiet=False)) == 0
    assert out.read_text() == ('{"type": "attached_probes", "data": {"probes": 1}}\n'
                               '{"type": "map", "data": {"@x": {"1,a": 5}}}\n')


def test_comm_is_refused_with_a_process() -> None:
    # Without -c/-p the same plan runs system-wide (tests/e2e/test_systemwide.py).
    plan = plan_of("uprobe:/bin/true:main { @c = count(); }")
    with pytest.raises(ExecutorError, match="--comm selects processes for system-wide"):
        run_plan(plan, RunOptions(command=None, pid=1, comms=("true",)))


def _options(out: str) -> RunOptions:
    return RunOptions(command=None, pid=None, output=out, quiet=True)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("text", "code"), [
    ("BEGIN { exit(4); }", 4),
    ("BEGIN { exit(); }", 0),
    ("interval:ms:10 { @n = count(); if (@n == 3) { exit(@n + 2); } }", 5),
    # The first exit() decides; END's own exit() after it does not change the code.
    ("BEGIN { exit(6); } END { exit(9); }", 6),
])
def test_run_plan_returns_the_exit_code(tmp_path, text: str, code: int) -> None:
    plan = compile_script(text, "t.up", CheckOptions())
    assert run_plan(plan, _options(str(tmp_path / "out"))) == code


@pytest.mark.timeout(30)
def test_sleep_in_begin_delays_what_follows(tmp_path) -> None:
    import time

    out = tmp_path / "out"
    plan = compile_script('BEGIN { printf("a\\n"); sleep(120); printf("b\\n"); exit(); }',
                          "t.up", CheckOptions())
    start = time.monotonic()
    assert run_plan(plan, _options(str(out))) == 0
    assert time.monotonic() - start >= 0.12
    assert out.read_text().startswith("a\nb\n")
