"""The script's `config = {...}` settings that change how a run behaves, end to end on
tests/programs/more_marks.c (more_mark(i) is called with i = 0, 1, ... N-1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import TARGET_FLAGS

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def marks(builder) -> Path:
    return builder.build("more_marks.c", *TARGET_FLAGS)


def test_max_map_keys_keeps_the_first_keys_and_says_how_many_were_dropped(uprobe, marks):
    script = (f"config = {{ max_map_keys = 2; }} "
              f"uprobe:{marks}:more_mark {{ @k[arg0] = count(); @n = count(); @s[arg0] = arg0; }}")
    r = uprobe.run("-e", script, "-c", f"{marks} 5")
    assert r.returncode == 0, r.stderr
    assert "@k[0]: 1\n@k[1]: 1\n" in r.out
    assert "@k[2]" not in r.out and "@s[2]" not in r.out
    assert "@n: 5\n" in r.out
    assert "WARNING: @k: 3 new keys dropped: the map was full (max_map_keys = 2)" in r.stderr
    assert "WARNING: @s: 3 new keys dropped" in r.stderr


def test_maps_are_capped_at_4096_keys_by_default(uprobe, marks):
    r = uprobe.run("-e", f"uprobe:{marks}:more_mark {{ @k[arg0] = count(); }}",
                   "-c", f"{marks} 4100")
    assert r.returncode == 0, r.stderr
    assert r.out.count("@k[") == 4096
    assert "WARNING: @k: 4 new keys dropped" in r.stderr


def test_print_maps_on_exit_false_skips_the_final_dump(uprobe, marks):
    script = (f"config = {{ print_maps_on_exit = false; }} "
              f'uprobe:{marks}:more_mark {{ @n = count(); }} END {{ printf("n=%d\\n", @n); }}')
    r = uprobe.run("-e", script, "-c", f"{marks} 3")
    assert r.returncode == 0, r.stderr
    assert r.out.strip() == "n=3"


@pytest.mark.parametrize("mode, missing_ok", [("warn", True), ("ignore", True), ("error", False)])
def test_missing_probes(uprobe, marks, mode, missing_ok):
    script = (f'config = {{ missing_probes = "{mode}"; }} '
              f"uprobe:{marks}:no_such_function, uprobe:{marks}:more_mark {{ @n = count(); }}")
    r = uprobe.run("-e", script, "-c", f"{marks} 3")
    if not missing_ok:
        assert r.returncode == 2
        assert "no function 'no_such_function'" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert "@n: 3" in r.out
    warned = (f"WARNING: no function 'no_such_function' in {marks}\n"
              f"WARNING: Unable to attach probe: uprobe:{marks}:no_such_function. If this is "
              "expected, set the 'missing_probes' config variable to 'ignore'.\n")
    assert (warned in r.stderr) == (mode == "warn"), r.stderr


def test_max_probes_refuses_a_script_that_places_more(uprobe, marks):
    script = (f"config = {{ max_probes = 1; }} "
              f"uprobe:{marks}:more_mark, uretprobe:{marks}:more_mark {{ @n = count(); }}")
    r = uprobe.run("-e", script, "-c", f"{marks} 3")
    assert r.returncode == 2
    assert "places 2 probes, more than max_probes = 1" in r.stderr


def test_max_ustack_and_stack_mode(uprobe, marks):
    script = (f"config = {{ max_ustack = 1; stack_mode = raw; }} "
              f"uprobe:{marks}:more_mark /arg0 == 0/ {{ print(ustack); }}")
    r = uprobe.run("-e", script, "-c", f"{marks} 2")
    assert r.returncode == 0, r.stderr
    addr = int(next(ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("addr")), 16)
    frames = [ln.strip() for ln in r.out.splitlines() if ln.strip()]
    assert frames == [f"{addr:x}"]
