"""The REPL driven through prompt_toolkit's pipe input against a running program: clauses
added and deleted live, their output, the program's text restored, maps and thread-locals
kept across edits, errors with nothing attached, save and load."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from runtime.elfsyms import ElfFile
from runtime.live import LiveDriver, LiveSymbols
from runtime.procmaps import read_maps
from uplang.app.repl import Repl, run_prompt

pytestmark = pytest.mark.timeout(120)
WAIT_S = 30.0


class Screen:
    """Everything the REPL and its probes printed, with waiting for a pattern to appear."""

    def __init__(self) -> None:
        self.text = ""
        self._cond = threading.Condition()

    def write(self, text: str) -> int:
        with self._cond:
            self.text += text
            self._cond.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    def mark(self) -> int:
        with self._cond:
            return len(self.text)

    def wait_for(self, pattern: str, since: int = 0) -> re.Match[str]:
        """The first match of `pattern` in the output after offset `since`."""
        rx = re.compile(pattern, re.M)
        with self._cond:
            found = self._cond.wait_for(lambda: rx.search(self.text, since), WAIT_S)
            if not found:
                raise AssertionError(f"no {pattern!r} in REPL output:\n{self.text}")
            return found


class Typist:
    """Types into the REPL (running on the test's main thread) from a helper thread and
    checks what comes out; whatever fails there is re-raised on the main thread."""

    def __init__(self, screen: Screen, pipe) -> None:  # noqa: ANN001
        self.screen = screen
        self.pipe = pipe
        self.error: BaseException | None = None

    def type(self, line: str, expect: str) -> re.Match[str]:
        since = self.screen.mark()
        self.pipe.send_text(line + "\r")
        return self.screen.wait_for(expect, since)

    def run(self, script: Callable[[Typist], None]) -> threading.Thread:
        def body() -> None:
            try:
                script(self)
            except BaseException as exc:  # noqa: BLE001 - re-raised by the test
                self.error = exc
            finally:
                self.pipe.send_text(":quit\r")

        t = threading.Thread(target=body, daemon=True)
        t.start()
        return t


def run_repl(script: Callable[[Typist], None]) -> tuple[Screen, Repl]:
    screen = Screen()
    driver = LiveDriver(screen, screen)
    repl = Repl(driver, screen)
    with create_pipe_input() as pipe:
        typist = Typist(screen, pipe)
        helper = typist.run(script)
        run_prompt(repl, LiveSymbols(driver), InMemoryHistory(), input=pipe,
                   output=DummyOutput())
        helper.join(WAIT_S)
    if typist.error is not None:
        raise typist.error
    return screen, repl


@pytest.fixture
def program(builder, reaper):
    """tests/programs/repl_loop.c running untraced; yields (path, Popen)."""
    path = builder.build("repl_loop.c", "-O1")
    proc = subprocess.Popen([str(path)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == b"ready\n"
    yield path, proc
    proc.stdout.close()


def text_bytes(pid: int, path: Path) -> dict[int, bytes]:
    """The program's executable mappings, as /proc/PID/mem reads them now."""
    real = str(path.resolve())
    out = {}
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for m in read_maps(pid):
            if m.executable and m.path == real:
                mem.seek(m.start)
                out[m.start] = mem.read(m.end - m.start)
    return out


def function_byte(pid: int, path: Path, name: str) -> int:
    """The first byte of function `name` as mapped in `pid` now."""
    elf = ElfFile.open(str(path))
    sym = elf.function(name)
    bias = elf.load_bias(pid)
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(sym.vaddr + bias)
        return mem.read(1)[0]


def test_add_see_output_delete_restores_text(program):
    path, proc = program
    pid = proc.pid
    before = text_bytes(pid, path)
    orig_tick = function_byte(pid, path, "tick")
    orig_tock = function_byte(pid, path, "tock")
    seen: dict[str, object] = {}

    def script(t: Typist) -> None:
        t.type(f":attach {pid}", rf"^attached to pid {pid}$")
        t.type(f'uprobe:{path}:tick {{ printf("tick %d\\n", arg0); }}',
               rf"^\[1\] uprobe:{re.escape(str(path))}:tick: 1 site$")
        t.screen.wait_for(r"^tick \d+$")
        t.type(f"uprobe:{path}:tock {{ @tocks = count(); }}", r"^\[2\] .*: 1 site$")
        seen["tick_added"] = function_byte(pid, path, "tick")
        seen["tock_added"] = function_byte(pid, path, "tock")
        t.type(":del 1", r"^deleted \[1\] \(\d+ hits?\)$")
        seen["tick_deleted"] = function_byte(pid, path, "tick")
        seen["tock_deleted"] = function_byte(pid, path, "tock")
        seen["probes"] = t.type(":probes", r"^\[2\] \d+ hits?, 1 site: .*$").group(0)

    screen, repl = run_repl(script)
    assert seen["tick_added"] == seen["tock_added"] == 0xCC
    assert seen["tick_deleted"] == orig_tick  # that clause's breakpoint is gone...
    assert seen["tock_deleted"] == 0xCC  # ...and only that clause's
    assert seen["probes"].endswith(":tock { @tocks = count(); }")
    listing = screen.text[screen.text.rindex("deleted [1]"):].splitlines()[1:]
    assert [line[:4] for line in listing] == ["[2] "]
    # Leaving detached: every byte of the program's text is back, and it runs on.
    assert text_bytes(pid, path) == before
    assert function_byte(pid, path, "tock") == orig_tock
    assert proc.poll() is None
    assert repl.driver.pid is None


def test_map_and_thread_local_live_across_edits_then_save_and_load(program, tmp_path):
    path, proc = program
    pid = proc.pid
    saved = tmp_path / "live.up"
    second = f'uprobe:{path}:tock /self->seen/ {{ @n = count(); printf("n=%d\\n", @n); }}'
    got: dict[str, object] = {}

    def script(t: Typist) -> None:
        t.type(f":attach {pid}", r"^attached")
        t.type(f'uprobe:{path}:tick {{ @n = count(); self->seen = 1; printf("t\\n"); }}',
               r"^\[1\] .*: 1 site$")
        t.screen.wait_for(r"^t$")
        t.type(":del 1", r"^deleted \[1\]")
        # @n stopped growing with its clause gone; it lives on with the value it had.
        kept = int(t.type(":print @n", r"^@n: (\d+)$").group(1))
        got["kept"] = kept
        # A new clause counts on in the same map, gated by the deleted clause's self->seen.
        since = t.screen.mark()
        t.type(second, r"^\[2\] .*: 1 site$")
        got["first_n"] = int(t.screen.wait_for(r"^n=(\d+)$", since).group(1))
        t.type(f":save {saved}", r"^saved 1 clause to ")
        t.type(":del 2", r"^deleted \[2\]")
        since = t.screen.mark()
        t.type(f":load {saved}", r"^\[3\] .*: 1 site$")
        got["after_load"] = int(t.screen.wait_for(r"^n=(\d+)$", since).group(1))
        got["probes"] = t.type(":probes", r"^\[3\] .*$").group(0)

    run_repl(script)
    assert got["kept"] >= 1
    assert got["first_n"] == got["kept"] + 1
    assert saved.read_text() == second + "\n"
    assert got["after_load"] > got["first_n"]
    assert got["probes"].endswith(": " + second)
    assert proc.poll() is None


def two_clauses(path: Path) -> str:
    return f"uprobe:{path}:tick {{ @a = count(); }} uprobe:{path}:tikc {{ @b = count(); }}"


def test_errors_show_a_caret_and_attach_nothing(program):
    path, proc = program
    pid = proc.pid
    before = text_bytes(pid, path)
    out: dict[str, str] = {}

    def script(t: Typist) -> None:
        t.type(f":attach {pid}", r"^attached")
        m = t.type(f"uprobe:{path}:tick {{ @x = count(; }}", r"^<input>:1:\d+: error: .*$")
        out["syntax"] = t.screen.text[m.start():]
        out["caret"] = t.screen.wait_for(r"^ +\^~*$", m.start()).group(0)
        # Two clauses in one input: the second cannot be placed, so neither is.
        m = t.type(two_clauses(path), r"^<input>:1:(\d+): error: no function 'tikc' in .*; did you mean tick\?$")
        out["resolve_col"] = m.group(1)
        out["resolve"] = t.screen.text[m.start():].splitlines()[:3]
        t.type(f"uprobe:{path}:tick {{ @c = count(); }}", r"^\[\d+\] .*: 1 site$")
        t.type(f"uprobe:{path}:tock {{ @c = hist(arg0); }}", r"error: map @c .*")
        out["probes"] = t.type(":probes", r"^\[\d+\] \d+ hits?, 1 site: .*$").group(0)
        t.type(":frob", r"^error: unknown command ':frob' \(try :help\)$")

    run_repl(script)
    assert "@c = count()" in out["probes"]
    # The caret is under the probe that matched nothing.
    col = int(out["resolve_col"])
    assert out["resolve"][1] == "  " + two_clauses(path)
    assert out["resolve"][2] == " " * (col + 1) + "^" + "~" * (len(f"uprobe:{path}:tikc") - 1)
    assert two_clauses(path)[col - 1:].startswith(f"uprobe:{path}:tikc")
    line = out["syntax"].splitlines()
    assert line[1].strip() == f"uprobe:{path}:tick {{ @x = count(; }}"
    assert line[2].index("^") == line[1].index(";")
    assert out["caret"] == line[2]
    assert text_bytes(pid, path) == before
    assert proc.poll() is None


def test_spawn_from_the_repl_and_target_exit(builder, reaper):
    prog = builder.build("rt_count.c", "-O1")
    got: dict[str, object] = {}

    def script(t: Typist) -> None:
        t.type(f"uprobe:{prog}:work {{ @calls = count(); }}", r"^\[1\] .*not placed: no process")
        m = t.type(f":spawn {prog} 5000", r"^started pid (\d+); 1 clause placed$")
        reaper.add(int(m.group(1)))
        t.screen.wait_for(r"^\[target exited with status 0\]$")
        got["calls"] = t.type(":print @calls", r"^@calls: (\d+)$").group(1)
        got["probes"] = t.type(":probes", r"^\[1\] .*$").group(0)

    run_repl(script)
    assert got["calls"] == "5000"
    assert got["probes"].startswith("[1] 5000 hits, 0 sites: ")


def test_completion_from_the_target(program, builder):
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from uplang.app.complete import UplangCompleter
    from uplang.app.repl import COMMANDS

    path, proc = program
    usdt_bin = builder.build("usdt_probes.c", "-O1")
    driver = LiveDriver(Screen(), Screen())
    completer = UplangCompleter(LiveSymbols(driver), COMMANDS)

    def complete(text: str) -> list[str]:
        doc = Document(text, len(text))
        return [c.text for c in completer.get_completions(doc, CompleteEvent())]

    assert complete("uprobe:libc.so") == []  # nothing mapped while unattached
    driver.attach(proc.pid)
    try:
        assert "libc.so.6:" in complete("uprobe:libc.so")
        assert f"{path.resolve()}:" in complete(f"uprobe:{path.parent}/repl_")
        assert complete(f"uprobe:{path}:t") == ["tick", "tock"]
        assert "malloc" in complete("uretprobe:libc.so.6:mallo")
        assert complete("uprobe::tic") == ["tick"]  # "" is the traced program
        driver.store.assign("seen", (), 1)
        assert complete("uprobe::tick { @s") == ["@seen"]
    finally:
        driver.detach()
    assert complete(f"usdt:{usdt_bin}:usdtdemo:") == ["done", "start", "values"]
    assert complete(f"usdt:{usdt_bin}:st") == ["start"]
    assert proc.poll() is None
