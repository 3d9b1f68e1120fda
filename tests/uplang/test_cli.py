"""The command line: every form and flag, exit codes, and the contract with the runtime
(exercised with stand-in runtime modules so that these tests trace nothing)."""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.listing import ProbeQuery
from uplang.app.cli import main

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "uprobe:libc:malloc /arg0 > $1/ { @bytes = hist(arg0); }"


@dataclass
class FakeRunOptions:
    command: str | None
    pid: int | None
    fmt: str = "text"
    output: str | None = None
    quiet: bool = False
    unsafe: bool = False
    debug: bool = False
    follow_forks: bool = True
    verbose: bool = False
    cpu: int | None = None
    trap: bool = False
    demangle: bool = True
    trace: str | None = None
    comms: tuple[str, ...] = ()


class FakeUprobeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch):
    """Stand-ins for runtime.executor / runtime.listing / runtime.errors that record calls."""
    calls: dict[str, object] = {}
    behaviour: dict[str, object] = {"result": 0, "raise": None, "lines": ["uprobe:libc:malloc"]}

    def run_plan(plan, options):
        calls["plan"], calls["options"] = plan, options
        if behaviour["raise"] is not None:
            raise behaviour["raise"]
        return behaviour["result"]

    def list_probes(pattern, pid, verbose, demangle=True, debug_dirs=()):
        calls["list"] = (pattern, pid, verbose)
        if behaviour["raise"] is not None:
            raise behaviour["raise"]
        return behaviour["lines"]

    executor = types.ModuleType("runtime.executor")
    executor.RunOptions = FakeRunOptions
    executor.run_plan = run_plan
    listing = types.ModuleType("runtime.listing")
    listing.list_probes = list_probes
    listing.ProbeQuery = ProbeQuery
    errors = types.ModuleType("runtime.errors")
    errors.UprobeError = FakeUprobeError
    monkeypatch.setitem(sys.modules, "runtime.executor", executor)
    monkeypatch.setitem(sys.modules, "runtime.listing", listing)
    monkeypatch.setitem(sys.modules, "runtime.errors", errors)
    return calls, behaviour


def test_help_lists_forms_examples_and_exit_codes(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for text in ("uprobe run FILE", "uprobe list PATTERN", "uprobe repl", "examples:",
                 "exit status:", "130", "--dry-run", "--unsafe", "--no-follow-forks"):
        assert text in out
    assert main(["run", "--help"]) == 0
    assert main(["list", "--help"]) == 0


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("uprobe ")


@pytest.mark.parametrize("argv", [
    ["--dry-run", "-e", SCRIPT, "7"],
    ["run", "--dry-run", "-e", SCRIPT, "7"],
    ["run", "-e", SCRIPT, "--dry-run", "7"],
])
def test_dry_run_forms_print_the_plan(argv: list[str], capsys) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "params: $1='7'" in out and "#0 uprobe target=libc func=malloc" in out


def test_file_forms_with_flags_after_the_script(tmp_path: Path, capsys) -> None:
    script = tmp_path / "s.up"
    script.write_text(SCRIPT)
    assert main([str(script), "--dry-run", "3"]) == 0
    first = capsys.readouterr().out
    assert main(["run", str(script), "3", "--dry-run", "-p", "99"]) == 0
    assert capsys.readouterr().out == first


def test_dry_run_writes_to_output_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "plan.txt"
    assert main(["--dry-run", "-o", str(out), "-e", "BEGIN { exit(); }"]) == 0
    assert "#0 begin" in out.read_text()
    assert capsys.readouterr().out == ""


def test_script_errors_exit_1_without_traceback(capsys) -> None:
    assert main(["-e", "uprobe:a:f { @ = retval; prinft(\"x\"); }", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "<program>:1:18: error: 'retval' can only be used in uretprobe probes" in err
    assert "<program>:1:26: error: unknown function 'prinft'" in err
    assert "Traceback" not in err


def test_empty_target_needs_a_process_for_a_real_run(runtime, capsys) -> None:
    assert main(["-e", "uprobe::main { }"]) == 1
    assert "needs a process" in capsys.readouterr().err
    assert main(["-e", "uprobe::main { }", "--dry-run"]) == 0


@pytest.mark.parametrize("argv,message", [
    (["--bogus"], "unrecognized arguments"),
    ([], "no script: give a FILE or -e PROGRAM"),
    (["-c", "ls", "-p", "5", "-e", "BEGIN { }"], "give -c CMD or -p PID, not both"),
    (["-f", "xml", "-e", "BEGIN { }"], "invalid choice"),
    (["-p", "abc", "-e", "BEGIN { }"], "not a process id"),
    (["/nonexistent/x.up"], "cannot read /nonexistent/x.up"),
    (["-l", "x", "-e", "BEGIN { }"], "-l takes a pattern and no script"),
])
def test_usage_errors_exit_1(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_passes_every_flag_to_the_runtime(runtime, tmp_path: Path) -> None:
    calls, behaviour = runtime
    behaviour["result"] = 5
    out = str(tmp_path / "o.json")
    argv = ["run", "-e", SCRIPT, "-c", "ls -l", "-f", "json", "-o", out, "-q", "-v",
            "--unsafe", "--debug", "--no-follow-forks", "--cpu", "1", "--trap", "--trace", "t.json",
            "42"]
    assert main(argv) == 5
    assert calls["options"] == FakeRunOptions(
        command="ls -l", pid=None, fmt="json", output=out, quiet=True, unsafe=True,
        debug=True, follow_forks=False, verbose=True, cpu=1, trap=True, trace="t.json",
    )
    plan = calls["plan"]
    assert plan.params == ("42",) and plan.unsafe and plan.probes[0].func == "malloc"
    assert main(["-e", SCRIPT, "-p", "1234"]) == 5
    assert calls["options"] == FakeRunOptions(command=None, pid=1234)
    assert main(["-e", SCRIPT, "--comm", "a", "--comm", "b"]) == 5
    assert calls["options"] == FakeRunOptions(command=None, pid=None, comms=("a", "b"))


def test_runtime_errors_exit_2_with_their_message(runtime, capsys) -> None:
    _calls, behaviour = runtime
    behaviour["raise"] = FakeUprobeError("cannot attach to 1234: no such process")
    assert main(["-e", SCRIPT, "-p", "1234"]) == 2
    assert capsys.readouterr().err == "uprobe: cannot attach to 1234: no such process\n"


def test_unexpected_errors_exit_2_traceback_only_with_debug(runtime, capsys) -> None:
    _calls, behaviour = runtime
    behaviour["raise"] = RuntimeError("boom")
    assert main(["-e", SCRIPT, "-p", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "uprobe: error: boom\n"
    assert main(["-e", SCRIPT, "-p", "1", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_interrupt_exits_130(runtime) -> None:
    _calls, behaviour = runtime
    behaviour["raise"] = KeyboardInterrupt()
    assert main(["-e", SCRIPT, "-p", "1"]) == 130


def test_list_forms(runtime, capsys) -> None:
    calls, behaviour = runtime
    behaviour["lines"] = ["uprobe:/lib/libc.so.6:malloc", "uprobe:/lib/libc.so.6:free"]
    assert main(["list", "uprobe:libc:*", "-p", "77", "-v"]) == 0
    assert calls["list"] == (ProbeQuery("uprobe", "libc", "*"), 77, True)
    assert capsys.readouterr().out == "uprobe:/lib/libc.so.6:malloc\nuprobe:/lib/libc.so.6:free\n"
    assert main(["-l", "usdt:./prog"]) == 0
    assert calls["list"] == (ProbeQuery("usdt", "./prog"), None, False)
    # The script's aliases list too: `u:` is uprobe, a glob names functions.
    assert main(["-l", "u:libc:mallo?"]) == 0
    assert calls["list"] == (ProbeQuery("uprobe", "libc", "mallo?"), None, False)
    assert main(["-l", "ur:libc"]) == 0
    assert calls["list"] == (ProbeQuery("uretprobe", "libc", "*"), None, False)
    assert main(["-l", "U:./prog:prov:na*"]) == 0
    assert calls["list"] == (ProbeQuery("usdt", "./prog", usdt_provider="prov",
                                        usdt_name="na*"), None, False)
    assert main(["-l", "/lib/libc.so.6"]) == 0
    assert calls["list"] == (ProbeQuery("", "/lib/libc.so.6"), None, False)
    capsys.readouterr()
    assert main(["-l", "kprobe:vfs_read"]) == 1
    assert "trace the kernel" in capsys.readouterr().err
    assert main(["-l", "interval:s:1"]) == 1
    assert "nothing to list" in capsys.readouterr().err
    behaviour["raise"] = FakeUprobeError("no such file: ./prog")
    assert main(["-l", "usdt:./prog"]) == 2
    assert "uprobe: no such file: ./prog" in capsys.readouterr().err


def test_repl_gets_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("uplang.app.repl")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "uplang.app.repl", fake)
    assert main(["repl", "-p", "12", "--unsafe", "x"]) == 0
    assert seen == [["-p", "12", "--unsafe", "x"]]


@pytest.mark.timeout(60)
def test_real_process_prints_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uplang.cli", "-e", "BEGIN { @ = kstack; }", "--dry-run"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "'kstack' is about the kernel" in proc.stderr and "Traceback" not in proc.stderr
