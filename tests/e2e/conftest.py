"""End-to-end fixtures: the `uprobe` command run as a real subprocess on compiled targets."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The CLI exactly as installed (`uprobe = uplang.cli:main`), without needing the install.
UPROBE = [sys.executable, "-c", "import sys; from uplang.cli import main; sys.exit(main())"]
TARGET_FLAGS = ("-O1", "-fno-omit-frame-pointer")


def uprobe_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass(frozen=True)
class Run:
    """out: what uprobe wrote (through -o); stdout: the traced program's own output, which
    would otherwise interleave with uprobe's lines at any point."""

    returncode: int
    out: str
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Uprobe:
    """Runs `uprobe ARGS...`; `popen` for tests that signal it while it runs. `trap`:
    every run gets `--trap` (the trap path for every probe, instead of the default jumps
    where sites allow them)."""

    cwd: Path
    trap: bool = False

    def _with_mode(self, argv: list[str]) -> list[str]:
        if not self.trap or (argv and argv[0] == "repl"):
            return argv
        at = 1 if argv and argv[0] == "run" else 0
        return [*argv[:at], "--trap", *argv[at:]]

    def run(self, *args: str, timeout: float = 90) -> Run:
        out = self.cwd / "uprobe.out"
        out.unlink(missing_ok=True)
        argv = self._with_mode(list(args))
        at = 1 if argv and argv[0] == "run" else 0
        argv[at:at] = ["-o", str(out)]
        done = subprocess.run([*UPROBE, *argv], cwd=self.cwd, env=uprobe_env(),
                              capture_output=True, text=True, timeout=timeout, check=False)
        text = out.read_text(errors="surrogateescape") if out.exists() else ""
        return Run(done.returncode, text, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([*UPROBE, *self._with_mode(list(args))], cwd=self.cwd,
                                env=uprobe_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="session")
def target(builder) -> Path:
    """tests/programs/e2e_target.c, built once per session with frame pointers."""
    return builder.build("e2e_target.c", *TARGET_FLAGS)


@pytest.fixture(params=["jump", "trap"])
def uprobe(request: pytest.FixtureRequest, tmp_path: Path) -> Uprobe:
    """The command with its default placement (jumps where sites allow), and with --trap."""
    return Uprobe(tmp_path, trap=request.param == "trap")
