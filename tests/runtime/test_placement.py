"""runtime/placement.py: the one path from plan probes to things placed in a session, used by
`uprobe run` and the REPL's live driver alike. The REPL gets every config key and the
register-free fast path as `uprobe run` does; timers and samplers are removed like probes.
Run against tests/programs/repl_loop.c (tick(i), tock(i) every millisecond, until killed)."""

from __future__ import annotations

import subprocess

import pytest
from programs.rt_support import Lines

from runtime.elfsyms import ElfFile
from runtime.live import LiveClause, LiveDriver
from runtime.placement import NotEligible, Placer, Settings, TrapStrategy
from runtime.wakeup import TimerClock
from uplang.checks import CheckOptions
from uplang.planner import compile_script

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def loop(builder, reaper):
    """repl_loop running untraced; yields its path and pid."""
    path = builder.build("repl_loop.c", "-O1", "-fno-omit-frame-pointer")
    proc = subprocess.Popen([str(path)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == b"ready\n"
    yield path, proc.pid
    proc.stdout.close()


def add(driver: LiveDriver, script: str) -> LiveClause:
    """Add the last clause of `script` (earlier clauses are assumed live already)."""
    plan = compile_script(script, "live.up", CheckOptions(has_process=True, has_command=True))
    last = len(plan.clauses) - 1
    return driver.add(plan, [last], [script])[0]


def test_the_repl_applies_max_map_keys():
    out = Lines()
    driver = LiveDriver(out, out)
    try:
        add(driver, "config = { max_map_keys = 2; } "
                    "BEGIN { @k[1] = 1; @k[2] = 2; @k[3] = 3; @k[4] = 4; }")
        assert driver.store.len("k") == 2
        assert driver.store.dropped == {"k": 2}
    finally:
        driver.close()


def test_the_repl_applies_stack_mode(loop):
    path, pid = loop
    out = Lines()
    driver = LiveDriver(out, Lines())
    try:
        driver.attach(pid)
        add(driver, f"config = {{ stack_mode = raw; }} uprobe:{path}:tick {{ print(ustack(1)); }}")
        line = out.wait_for(r"^\s*([0-9a-f]+)\s*$")
        elf = ElfFile.open(str(path))
        assert int(line.group(1), 16) == elf.function("tick").vaddr + elf.load_bias(pid)
        assert "tick" not in out.text
    finally:
        driver.close()


def test_repl_probes_get_the_register_free_fast_path(loop):
    path, pid = loop
    out = Lines()
    driver = LiveDriver(out, Lines())
    try:
        driver.attach(pid)
        lean = add(driver, f"uprobe:{path}:tick {{ @c = count(); }}")
        reads = add(driver, f"uprobe:{path}:tick {{ @c = count(); }} "
                            f"uprobe:{path}:tock {{ @a = sum(arg0); }}")
        (lean_site,) = [part.handle for g in lean.placed for part in g.parts]
        (reads_site,) = [part.handle for g in reads.placed for part in g.parts]
        assert lean_site.reads_regs is False
        assert reads_site.reads_regs is True
    finally:
        driver.close()


def test_a_deleted_interval_clause_leaves_no_timer_behind(loop):
    path, pid = loop
    out = Lines()
    driver = LiveDriver(out, Lines())
    try:
        driver.attach(pid)
        live = add(driver, 'interval:ms:5 { printf("tick\\n"); }')
        (part,) = [p for g in live.placed for p in g.parts]
        assert part.how == "timer"
        out.wait_for("^tick$")
        clock = driver._tracer.session._clock  # noqa: SLF001 - the timer's owner
        assert part.handle in clock._timers  # noqa: SLF001
        driver.delete(live.number)
        assert part.handle not in clock._timers  # noqa: SLF001
    finally:
        driver.close()


def test_a_removed_timer_does_not_fire_even_when_due():
    fired: list[str] = []
    clock = TimerClock(lambda: None)
    try:
        kept = clock.add(1, lambda: fired.append("kept"))
        gone = clock.add(1, lambda: fired.append("gone"))
        clock.remove(gone)
        # Both deadlines have passed by now (1 ns periods).
        clock.run_due()
        assert fired == ["kept"]
        clock.remove(kept)
        clock.run_due()
        assert fired == ["kept"]
    finally:
        clock.close()


class _Refuses:
    name = "refuses"

    def place(self, host, site):  # noqa: ANN001, ANN201
        raise NotEligible("not this site")


def test_a_strategy_that_refuses_a_site_hands_it_to_the_next(loop):
    """The seam a second strategy plugs into: strategies in order, the first that takes
    the site places it; the `-v` line names the strategy when it is not the trap."""
    from runtime.session import Session

    path, pid = loop
    plan = compile_script(f"uprobe:{path}:tick {{ @c = count(); }}", "x.up",
                          CheckOptions(has_process=True))
    notes: list[str] = []
    session = Session.attach(pid)
    try:
        placer = Placer(session, Settings.of(plan.config), warn=notes.append,
                        note=notes.append, strategies=(_Refuses(), TrapStrategy()))
        (group,) = placer.place_all([(plan.probes[0], plan.clauses[0], lambda ctx: None)])
        assert [p.how for p in group.parts] == ["trap"]
        probe = group.parts[0].handle
        assert session.sites(probe) == 1
        assert any("tick" in n for n in notes)
        placer.remove(group)
        assert session.sites(probe) == 0 and group.parts == []
        alone = Placer(session, Settings(), warn=notes.append, strategies=(_Refuses(),))
        with pytest.raises(NotEligible, match="refuses: not this site"):
            alone.place(plan.probes[0], plan.clauses[0], lambda ctx: None)
        assert alone.groups == []
    finally:
        session.detach()


@pytest.mark.parametrize(("text", "reads"), [
    ("{ @c = count(); }", False),
    ('{ printf("%d %s\\n", pid, comm); @t[tid] = sum(nsecs); self->x = 1; }', False),
    ("/arg0 > 1/ { @c = count(); }", True),
    ("{ @s[ustack] = count(); }", True),
    ("{ @f[func] = count(); }", True),
    ('{ @r = sum(reg("rax")); }', True),
])
def test_the_plan_says_which_clauses_read_registers(text, reads):
    plan = compile_script(f"uprobe:/bin/true:main {text}", "x.up",
                          CheckOptions(unsafe=False, params=()))
    assert plan.clauses[0].reads_regs is reads


def test_settings_read_every_run_time_key():
    plan = compile_script(
        "config = { max_map_keys = 7; max_strlen = 9; stack_mode = perf; "
        "missing_probes = warn; max_probes = 3; print_maps_on_exit = 0; } BEGIN { exit(); }",
        "x.up", CheckOptions())
    assert Settings.of(plan.config) == Settings(
        max_map_keys=7, max_strlen=9, stack_mode="perf", missing_probes="warn",
        max_probes=3, print_maps_on_exit=False)

