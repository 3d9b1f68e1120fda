"""The start-up benchmark (bench/to_main.py) still runs: one quick pass, no figure asserted.

Speed is measured in bench/, never asserted in tests; this only keeps the harness from
rotting as the CLI and the runtime move. The harness itself checks that every run reached
main() and counted exactly (one hit per probed function), for uprobe and for bpftrace.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Loaded by path: bench/ on sys.path would shadow tests' own modules (bench/programs.py).
_spec = importlib.util.spec_from_file_location("to_main", ROOT / "bench" / "to_main.py")
assert _spec is not None and _spec.loader is not None
to_main = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = to_main  # its dataclasses look their module up there
_spec.loader.exec_module(to_main)

pytestmark = pytest.mark.timeout(240)


@pytest.mark.skipif(shutil.which(to_main.BPFTRACE) is None or os.geteuid() != 0,
                    reason="bpftrace (run as root) is the benchmark's baseline")
def test_quick_pass_reports_every_row() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "to_main.py"), "--quick"],
                         capture_output=True, text=True, env=env, timeout=230)
    assert out.returncode == 0, out.stderr
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith("| ")]
    labels = [r.split(" | ")[0][2:] for r in rows]
    assert labels[:4] == ["command", "one probe, `-c` to main()",
                          "20 probes (`probe_fn_*`), `-c` to main()",
                          "dry run of one probe (to exit; bpftrace: `--emit-elf`)"]
    assert labels[4:] == ["phase", *to_main.PHASES, "other", "to main"]
    for row in rows[1:4]:
        up, bt, ratio = (float(c) for c in row.strip(" |").split(" | ")[1:])
        assert up > 0 and bt > 0 and ratio == pytest.approx(up / bt, rel=0.02, abs=0.011)


def test_section_is_replaced_in_place(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Benchmark results\n\n## Before\n\nkept\n\n{to_main.SECTION}\n\n"
                       "old figures\n\n## After\n\nkept too\n")
    to_main.write_section(results, f"{to_main.SECTION}\n\nnew figures\n")
    assert results.read_text() == (f"# Benchmark results\n\n## Before\n\nkept\n\n"
                                   f"{to_main.SECTION}\n\nnew figures\n\n## After\n\nkept too\n")
    to_main.write_section(results, f"{to_main.SECTION}\n\nnewer\n")
    assert "newer" in results.read_text() and "new figures" not in results.read_text()
    results.write_text("# Benchmark results\n")
    to_main.write_section(results, f"{to_main.SECTION}\n\nfirst\n")
    assert results.read_text() == f"# Benchmark results\n\n{to_main.SECTION}\n\nfirst\n"
