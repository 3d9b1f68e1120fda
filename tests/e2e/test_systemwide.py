"""System-wide probes (no -c/-p): every process that runs a probed program or loads a probed
library, started by anyone, before or after uprobe. Counts are compared with what the
programs themselves report; every tool is killed by pid at teardown, and a run of the
probed program with a timeout after the tool is gone proves nothing is left stalled."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from programs.textsnap import executable_text

from .conftest import UPROBE, uprobe_env

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(os.geteuid() != 0, reason="system-wide probes need root"),
]


class Tool:
    """A system-wide uprobe run: started, waited for until its marks are in place
    ("Attached" on stderr), stopped with SIGINT; `out` its -o output."""

    def __init__(self, tmp_path: Path, reaper, *args: str) -> None:
        self.out_path = tmp_path / "uprobe.out"
        self.proc = subprocess.Popen([*UPROBE, "-o", str(self.out_path), *args], cwd=tmp_path,
                                     env=uprobe_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        reaper.add(self.proc.pid)
        # Processes left alone are reported while attaching, before "Attached".
        self.first = ""
        while not self.first.endswith("\n") or not self.first.splitlines()[-1].startswith(
                "Attached"):
            line = self.proc.stderr.readline()
            assert line, self.first
            self.first += line

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        return self.wait()

    def wait(self) -> tuple[int, str, str]:
        """(exit status, -o output, stderr) once the tool has ended by itself."""
        _, err = self.proc.communicate(timeout=120)
        out = self.out_path.read_text() if self.out_path.exists() else ""
        return self.proc.returncode, out, self.first + err


def maps_of(out: str) -> dict[str, int]:
    """`@name[key]: N` / `@name: N` lines -> {"name[key]": N}."""
    found = {}
    for line in out.splitlines():
        if line.startswith("@") and ": " in line:
            key, _, value = line[1:].rpartition(": ")
            found[key] = int(value)
    return found


def run_after(path: Path, *args: str) -> str:
    """The probed program runs to its end after uprobe is gone: nothing stalls its exec."""
    done = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=30,
                          check=True)
    subprocess.run(["/bin/true"], timeout=30, check=True)
    return done.stdout


@pytest.fixture
def work(builder) -> Path:
    """tests/programs/sys_work.c: calls work() N times, N its last argument."""
    return builder.build("sys_work.c", "-O1")


SCRIPT = "uprobe:{p}:work {{ @calls = count(); }} uprobe:{p}:main {{ @runs = count(); }}"


def test_shell_loop_started_after_uprobe(work, tmp_path, reaper):
    tool = Tool(tmp_path, reaper, "-e", SCRIPT.format(p=work))
    loop = subprocess.run(["sh", "-c", f'i=0; while [ $i -lt 200 ]; do "{work}" 3 || exit 9; '
                           'i=$((i+1)); done'], capture_output=True, text=True, timeout=180)
    assert loop.returncode == 0
    assert loop.stdout == "sum=12\n" * 200
    code, out, err = tool.stop()
    assert code == 0, err
    assert maps_of(out) == {"calls": 600, "runs": 200}
    assert run_after(work, "2") == "sum=5\n"


def test_every_way_to_run_the_program(builder, work, tmp_path, reaper):
    """sh -c, a #! script that execs it, an exec from a non-leader thread, and the program
    as the #! interpreter of a script (opened inside bprm_execve)."""
    texec = builder.build("sys_thread_exec.c", "-O1", "-pthread")
    shscript = tmp_path / "run.sh"
    shscript.write_text(f"#!/bin/sh\nexec {work} 3\n")
    interp = tmp_path / "interp.sh"
    interp.write_text(f"#!{work}\n")
    for f in (shscript, interp):
        f.chmod(0o755)
    tool = Tool(tmp_path, reaper, "-e",
                f"uprobe:{work}:work {{ @calls[comm] = count(); }} "
                f"uprobe:{work}:main {{ @runs = count(); }}")
    outputs = [
        subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
        for argv in (["sh", "-c", f"{work} 1; true"], [str(shscript)],
                     [str(texec), str(work), "2"], [str(interp), "4"])
    ]
    assert outputs == ["sum=1\n", "sum=12\n", "sum=5\n", "sum=22\n"]
    code, out, err = tool.stop()
    assert code == 0, err
    # comm after an exec is the file's name; for the #! run it is the script's.
    name = work.name[:15]
    assert maps_of(out) == {f"calls[{name}]": 6, "calls[interp.sh]": 4, "runs": 4}


def start_spinner(spin: Path, reaper) -> subprocess.Popen:
    """tests/programs/rt_spin.c running (its threads call work() until stdin closes)."""
    p = subprocess.Popen([str(spin)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    reaper.add(p.pid)
    assert p.stdout.readline() == "ready\n"
    return p


def test_processes_already_running(builder, tmp_path, reaper):
    """Attached by the /proc scan, hit, and left byte-identical with their own result."""
    spin = builder.build("rt_spin.c", "-O1", "-pthread")
    procs = [start_spinner(spin, reaper) for _ in range(2)]
    before = [executable_text(p.pid) for p in procs]
    tool = Tool(tmp_path, reaper, "-e",
                f"uprobe:{spin}:work {{ @calls[pid] = count(); "
                f"if (@calls[pid] == 300) {{ @done = count(); }} "
                f"if (@done == 2) {{ exit(); }} }}")
    code, out, err = tool.wait()
    assert code == 0, err
    found = maps_of(out)
    assert found["done"] == 2
    assert {k for k in found if k.startswith("calls")} == {f"calls[{p.pid}]" for p in procs}
    for p, text in zip(procs, before, strict=True):
        assert executable_text(p.pid) == text
        stdout, _ = p.communicate(input="", timeout=60)
        assert (stdout.split()[0], p.returncode) == ("ok", 7)


def test_library_with_filter_counts_constructor_calls(builder, tmp_path, reaper):
    """sys_lib.so's constructor calls lib_work() 3 times, main 2 more; a second program
    with another name that loads the same library is not traced (--comm)."""
    lib = builder.build("sys_lib.c", "-O1", shared=True)
    main = tmp_path / "libmain"
    other = tmp_path / "othermain"
    src = Path(__file__).resolve().parents[1] / "programs" / "sys_lib_main.c"
    for exe in (main, other):
        subprocess.run(["gcc", "-O1", "-o", str(exe), str(src), str(lib),
                        f"-Wl,-rpath,{lib.parent}"], check=True)
    tool = Tool(tmp_path, reaper, "--comm", "libmain", "-e",
                f"uprobe:{lib}:lib_work {{ @calls[comm] = count(); }}")
    for exe in (main, other, main):
        assert subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                              check=True).stdout == "5\n"
    code, out, err = tool.stop()
    assert code == 0, err
    assert maps_of(out) == {"calls[libmain]": 10}
    assert run_after(main) == "5\n"


def test_nothing_stalled_after_sigkill_of_the_tool(work, tmp_path, reaper):
    """A loop keeps exec'ing the probed program while the tool is SIGKILLed: the loop
    finishes, and the program runs after with a timeout."""
    tool = Tool(tmp_path, reaper, "-e", SCRIPT.format(p=work))
    loop = subprocess.Popen(["sh", "-c", f'i=0; while [ $i -lt 100 ]; do "{work}" 0 '
                             '>/dev/null; i=$((i+1)); done; echo done'],
                            stdout=subprocess.PIPE, text=True)
    reaper.add(loop.pid)
    tool.proc.kill()
    tool.proc.wait(timeout=60)
    assert loop.communicate(timeout=120)[0] == "done\n"
    assert loop.returncode == 0
    assert run_after(work, "1") == "sum=1\n"


def test_process_under_gdb_reported_and_unharmed(builder, work, tmp_path, reaper):
    spin = builder.build("rt_spin.c", "-O1", "-pthread")
    gdb = subprocess.Popen(["gdb", "-q", "-nx", "-batch", "-ex", "run", "--args", str(spin)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    reaper.add(gdb.pid)
    while "ready" not in (line := gdb.stdout.readline()):
        assert line, "gdb ended early"
    free = start_spinner(spin, reaper)
    tool = Tool(tmp_path, reaper, "-e",
                f"uprobe:{spin}:work {{ @calls[pid] = count(); if (@calls[pid] == 100) "
                f"{{ exit(); }} }}")
    code, out, err = tool.wait()
    assert code == 0, err
    assert maps_of(out) == {f"calls[{free.pid}]": 100}
    assert err.count("already traced by pid") == 1, err
    assert "(a debugger or another tracer): left alone" in err
    out_gdb, _ = gdb.communicate(input="", timeout=120)
    assert "ok " in out_gdb and "exited with code 07" in out_gdb, out_gdb
    stdout, _ = free.communicate(input="", timeout=60)
    assert (stdout.split()[0], free.returncode) == ("ok", 7)


def test_without_cap_sys_admin_a_clear_error(work, tmp_path):
    done = subprocess.run(
        ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", *UPROBE, "-e",
         SCRIPT.format(p=work)], cwd=tmp_path, env=uprobe_env(), capture_output=True,
        text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("uprobe: system-wide probes (no -c or -p) need CAP_SYS_ADMIN")
    assert "-c CMD" in done.stderr and "-p PID" in done.stderr
    assert "Traceback" not in done.stderr


def test_exec_filtered_by_comm_runs_untraced(work, tmp_path, reaper):
    tool = Tool(tmp_path, reaper, "--comm", "someone-else", "-e", SCRIPT.format(p=work))
    for n in ("1", "3"):
        assert run_after(work, n) == ("sum=1\n" if n == "1" else "sum=12\n")
    code, out, err = tool.stop()
    assert code == 0, err
    assert maps_of(out) == {}
    assert "not traced" not in err


def test_program_started_under_gdb_later_is_reported_once(work, tmp_path, reaper):
    tool = Tool(tmp_path, reaper, "-e", SCRIPT.format(p=work))
    for _ in range(2):
        gdb = subprocess.run(["gdb", "-q", "-nx", "-batch", "-ex", "run", "--args", str(work),
                              "2"], capture_output=True, text=True, timeout=120)
        assert "sum=5" in gdb.stdout and "exited normally" in gdb.stdout, gdb.stdout
    assert run_after(work, "1") == "sum=1\n"
    code, out, err = tool.stop()
    assert code == 0, err
    assert maps_of(out) == {"calls": 1, "runs": 1}
    # One line per process gdb ran (two processes, each reported once).
    assert err.count("is already traced by pid") == 2, err


def test_ctrl_c_while_programs_start_leaves_none_stopped(work, tmp_path, reaper):
    """SIGINT lands while a loop keeps starting the program directly and as a #!
    interpreter: the tool detaches from all of them, and the loop runs to its end."""
    interp = tmp_path / "interp.sh"
    interp.write_text(f"#!{work}\n")
    interp.chmod(0o755)
    tool = Tool(tmp_path, reaper, "-e", SCRIPT.format(p=work))
    loop = subprocess.Popen(["sh", "-c", f'i=0; while [ $i -lt 60 ]; do "{work}" 1 || exit 9; '
                             f'"{interp}" 2 || exit 8; i=$((i+1)); done; echo done'],
                            stdout=subprocess.PIPE, text=True)
    reaper.add(loop.pid)
    assert loop.stdout.readline() == "sum=1\n"
    code, out, err = tool.stop()
    assert code == 0, err
    rest, _ = loop.communicate(timeout=120)
    assert loop.returncode == 0
    assert rest.endswith("done\n")
    assert run_after(work, "1") == "sum=1\n"


def test_dash_p_with_a_wildcard_file_still_means_that_process(builder, tmp_path, reaper):
    """`-p PID` with `uprobe:*:work` traces that process only, not every process that
    maps a file with a `work` function."""
    spin = builder.build("rt_spin.c", "-O1", "-pthread")
    procs = [start_spinner(spin, reaper) for _ in range(2)]
    tool = Tool(tmp_path, reaper, "-p", str(procs[0].pid), "-e",
                "uprobe:*:work { @calls[pid] = count(); if (@calls[pid] == 50) { exit(); } }")
    code, out, err = tool.wait()
    assert code == 0, err
    assert maps_of(out) == {f"calls[{procs[0].pid}]": 50}
    for p in procs:
        stdout, _ = p.communicate(input="", timeout=60)
        assert (stdout.split()[0], p.returncode) == ("ok", 7)
