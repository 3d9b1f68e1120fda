"""Every example script parses, passes the checks and plans, as it would for a real run."""

from __future__ import annotations

from pathlib import Path

import pytest

from uplang.checks import CheckOptions
from uplang.planner import compile_script
from uplang.planprint import format_plan

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.up"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_plans(path: Path) -> None:
    text = path.read_text()
    # As the command line runs them: with a process (-c) and --unsafe where the example
    # says so in its usage line.
    options = CheckOptions(unsafe="--unsafe" in text, has_process=True, has_command=True,
                           params=())
    plan = compile_script(text, str(path), options)
    assert plan.probes and plan.clauses
    assert all(p.kind in ("uprobe", "uretprobe", "usdt", "begin", "end", "interval", "profile")
               for p in plan.probes)
    assert format_plan(plan) == format_plan(compile_script(text, str(path), options))


def test_example_plan_details() -> None:
    by_name = {p.name: p for p in EXAMPLES}
    plan = compile_script(by_name["nanosleep_latency.up"].read_text())
    assert [(p.kind, p.func) for p in plan.probes] == [
        ("uprobe", "nanosleep"), ("uprobe", "clock_nanosleep"),
        ("uretprobe", "nanosleep"), ("uretprobe", "clock_nanosleep"),
    ]
    assert [(m.name, m.value_kind) for m in plan.maps] == [("sleep_us", "hist"),
                                                             ("slowest", "max")]
    plan = compile_script(by_name["timespec.up"].read_text())
    (ts,) = plan.types
    assert (ts.name, ts.size, [m.offset for m in ts.members]) == ("timespec", 16, [0, 8])
