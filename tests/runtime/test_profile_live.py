"""profile clauses in the REPL's live driver: placed into a spawned target, sampling while
live, silent once deleted. Synchronised on the output itself (an event per line), and on
an interval clause as the clock after the delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from programs.rt_support import Lines

from runtime.live import LiveDriver
from uplang.checks import CheckOptions
from uplang.planner import compile_script

pytestmark = pytest.mark.timeout(60)


def add(driver: LiveDriver, clauses: list[str], text: str):
    clauses.append(text)
    plan = compile_script(" ".join(clauses), "live.up",
                          CheckOptions(has_process=True, has_command=True))
    return driver.add(plan, [len(clauses) - 1], [text])[0]


def test_profile_clause_samples_until_deleted(builder, reaper) -> None:
    prog: Path = builder.build("more_spin.c", "-O1", "-fno-omit-frame-pointer")
    out = Lines()
    driver = LiveDriver(out, Lines())
    try:
        pid = reaper.add(driver.spawn([str(prog), "20000"]))
        clauses: list[str] = []
        live = add(driver, clauses, 'profile:hz:199 /tid == pid/ { printf("s %s\\n", func); }')
        assert live.sites == 1
        samples = out.wait_lines("s ", 20)
        assert sum(line == "s more_spin_here" for line in samples) >= 0.8 * len(samples)
        driver.delete(live.number)
        # The clock: ticks of another clause, added after the delete returned. Effects come
        # out in order, so samples taken before the delete are all out by the first tick.
        add(driver, clauses, 'interval:ms:20 { printf("tick\\n"); }')
        out.wait_lines("tick", 1)
        after_delete = len(out.lines("s "))
        out.wait_lines("tick", 6)  # 100 ms more: about 20 samples, had the sampler stayed on
        assert len(out.lines("s ")) == after_delete
        assert driver.pid == pid
    finally:
        driver.close()
