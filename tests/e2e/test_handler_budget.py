"""One loop budget per hit: nested `while (1)` loops cannot multiply max_loop_iterations
and hold the target stopped for ever. Each hit stops after the budget, reports one error
event, and the program runs to its end with its own output."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def named(builder):
    return builder.build("named_threads.c", "-O1", "-pthread")


def test_nested_endless_loops_share_one_budget(uprobe, named):
    script = ("config = { max_loop_iterations = 50 } "
              f"uprobe:{named}:tick {{ $n = 0; while (1) {{ while (1) {{ while (1) {{ $n++; }} }} }}"
              " @iters = sum($n); @hits = count(); }")
    r = uprobe.run("-e", script, "-c", str(named))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"
    # Per hit: the outer and the middle loop take one turn each, the inner loop the rest.
    assert "@hits: 2" in r.out and "@iters: 96" in r.out, r.out
    assert r.stderr.count("while loop stopped after 50 iterations") == 2, r.stderr
