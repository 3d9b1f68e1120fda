"""The REPL without a target: input completeness, completion, commands and their errors,
and the prompt's keys (multi-line clauses, Ctrl-C, Ctrl-D, persistent history)
through prompt_toolkit's pipe input."""

from __future__ import annotations

import io

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from runtime.live import LiveDriver
from uplang.app.complete import Command, FixedSource, UplangCompleter
from uplang.app.repl import COMMANDS, Repl, clause_text, is_complete, main, run_lines, run_prompt

pytestmark = pytest.mark.timeout(60)


def make_repl() -> tuple[io.StringIO, Repl]:
    out = io.StringIO()
    return out, Repl(LiveDriver(out, out), out)


# ----------------------------------------------------------------------------- input rules


@pytest.mark.parametrize(("text", "complete"), [
    (":probes", True),
    ("", True),
    ("uprobe:libc:malloc", False),  # a header: the body comes on the next line
    ("uprobe:libc:malloc /arg0 > 1/", False),
    ("BEGIN", False),
    ("sync uprobe:a:f", False),
    ("uprobe:a:f {", False),
    ("uprobe:a:f { if (1) { x", False),
    ('uprobe:a:f { printf("}', False),
    ('uprobe:a:f { printf("}"); }', True),
    ("uprobe:a:f { /* } */", False),
    ("uprobe:a:f { @ = count(); }", True),
    ("struct S { int a; }", True),
    ("nonsense", True),  # submitted, so that the error shows
])
def test_is_complete(text, complete):
    assert is_complete(text) is complete


def test_clause_text_slices_by_span():
    from uplang.parser import parse

    text = "// c\nBEGIN { }\n  uprobe:a:f\n  { @ = count(); }  END{}\n"
    spans = [c.span for c in parse(text).clauses]
    assert [clause_text(text, s) for s in spans] == [
        "BEGIN { }", "uprobe:a:f\n  { @ = count(); }", "END{}",
    ]


# ----------------------------------------------------------------------------- completion


SOURCE = FixedSource(
    objects=["/usr/lib/x86_64-linux-gnu/libc.so.6", "/nonexistent/app/server"],
    symbols={"libc.so.6": ["free", "malloc", "malloc_usable_size"],
             "": ["handle_request", "main"]},
    usdt={"/nonexistent/app/server": [("app", "request_start"), ("app", "request_done"),
                              ("db", "query")]},
    maps=["bytes", "latency"],
    numbers=[1, 4],
    fields={("./srv", "handle", ()): ["req", "flags"],
            ("./srv", "handle", ("req",)): ["len", "next", "path"]},
)


def completions(text: str) -> list[str]:
    completer = UplangCompleter(SOURCE, COMMANDS)
    return [c.text for c in completer.get_completions(Document(text, len(text)),
                                                      CompleteEvent(completion_requested=True))]


@pytest.mark.parametrize(("typed", "expected"), [
    ("ur", ["uretprobe:"]),
    ("us", ["usdt:"]),
    ("BEGIN { } E", ["END"]),
    ("uprobe:li", ["libc.so.6:"]),
    ("uprobe:/non", ["/nonexistent/app/server:"]),
    ("uprobe:libc.so.6:mall", ["malloc", "malloc_usable_size"]),
    ("uretprobe::ha", ["handle_request"]),
    ("usdt:/nonexistent/app/server:db", ["db:query"]),
    ("usdt:/nonexistent/app/server:app:request_", ["request_done", "request_start"]),
    ("uprobe:libc.so.6:free { @", ["@bytes", "@latency"]),
    ("uprobe:a:f { @hits = count(); @h", ["@hits"]),
    ("uprobe:a:f { $start = nsecs; printf(\"%d\", $s", ["$start"]),
    ("uprobe:a:f { self->ts = 1; } uretprobe:a:f { @ = self->", ["self->ts"]),
    ("uprobe:a:f /ret", ["retval"]),
    ("uprobe:a:f { @ = his", ["hist("]),
    ("uprobe:a:f { printf(\"com", []),
    # args. and members from the program's DWARF (the source answers; see LiveSymbols)
    ("uprobe:./srv:handle { @ = args.", ["flags", "req"]),
    ("uprobe:./srv:handle { @ = args->r", ["req"]),
    ("uprobe:./srv:handle { @[args.req->", ["len", "next", "path"]),
    ("uprobe:./srv:handle { @ = args.req.pa", ["path"]),
    (":pr", [":probes", ":print"]),
    (":print @l", ["@latency"]),
    (":del ", ["1", "4"]),
])
def test_completions(typed, expected):
    assert completions(typed) == expected


def test_command_table_matches_handlers():
    out, repl = make_repl()
    for c in COMMANDS:
        assert callable(getattr(repl, f"cmd_{c.name[1:]}")), c.name
    assert isinstance(COMMANDS[0], Command)


# ----------------------------------------------------------------------------- commands


def test_begin_clause_runs_at_once_and_maps_print():
    out, repl = make_repl()
    repl.handle('BEGIN { printf("hello %d\\n", 42); @x[1] = 5; @y = count(); }')
    repl.handle(":maps")
    repl.handle(":print @x")
    repl.handle(":clear @y")
    repl.handle(":print @y")
    repl.handle(":probes")
    assert out.getvalue() == (
        "hello 42\n"
        "[1] BEGIN: 0 sites\n"
        "@x[1]: 5\n"
        "@y: 1\n"
        "@x[1]: 5\n"
        "cleared @y\n"
        "@y is empty\n"
        '[1] 1 hit, 0 sites: BEGIN { printf("hello %d\\n", 42); @x[1] = 5; @y = count(); }\n'
    )


def test_command_errors_are_one_line(tmp_path):
    out, repl = make_repl()
    for line in (":del", ":del 7", ":print bytes", ":print @nope", ":attach x", ":detach",
                 ":load", f":load {tmp_path}/missing.up", ":spawn", ":nope",
                 "struct"):
        repl.handle(line)
    lines = out.getvalue().splitlines()
    assert lines[:10] == [
        "error: :del needs a clause number (see :probes)",
        "error: no clause 7 (see :probes)",
        "error: :print needs a map, e.g. :print @bytes",
        "error: no map @nope",
        "error: :attach needs a process id, e.g. :attach 1234",
        "error: not attached to any process",
        "error: :load needs a file name",
        f"error: cannot read {tmp_path}/missing.up: No such file or directory",
        "error: :spawn needs a command, e.g. :spawn ./server --port 8080",
        "error: unknown command ':nope' (try :help)",
    ]
    assert lines[10].startswith("<input>:1:")
    assert lines[12].strip() == "^"


def test_probe_clause_waits_for_a_process_and_saves(tmp_path):
    out, repl = make_repl()
    repl.handle("uprobe:libc:malloc { @bytes = hist(arg0); }")
    repl.handle("struct Pair { int a; int b; }")
    path = tmp_path / "s.up"
    repl.handle(f":save {path}")
    assert out.getvalue().splitlines() == [
        "[1] uprobe:libc:malloc: not placed: no process (:attach PID or :spawn CMD)",
        "definitions added",
        f"saved 1 clause to {path}",
    ]
    saved = path.read_text()
    assert saved.endswith("\n\nuprobe:libc:malloc { @bytes = hist(arg0); }\n")
    assert saved.startswith("struct Pair {")
    # A fresh REPL loads it back: same clause, same script.
    out2, repl2 = make_repl()
    repl2.handle(f":load {path}")
    repl2.handle(f":save {path}.again")
    assert (tmp_path / "s.up.again").read_text() == saved


def test_check_error_in_a_new_clause_points_into_it():
    out, repl = make_repl()
    repl.handle("BEGIN { @m = count(); }")
    repl.handle('BEGIN { @m = "text"; }')
    repl.handle(":probes")
    text = out.getvalue().splitlines()
    assert text[1].startswith("<input>:1:9: error: ") or text[1].startswith("<clause 1>:1:")
    assert text[-1].startswith("[1] 1 hit, 0 sites: BEGIN { @m = count(); }")


def test_run_lines_gathers_multi_line_input():
    out, repl = make_repl()
    run_lines(repl, ["BEGIN\n", "{\n", ' printf("multi\\n");\n', "}\n", ":quit\n",
                     'BEGIN { printf("never\\n"); }\n'])
    assert out.getvalue() == "multi\n[1] BEGIN: 0 sites\n"


def test_main_rejects_bad_options(capsys):
    assert main(["-p", "1", "-c", "x"]) == 1
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["-p", "999999999"]) == 2
    assert "no process with pid 999999999" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the prompt


def drive(keys: str, history=None) -> str:  # noqa: ANN001
    """Feed `keys` to the real prompt loop (it ends at EOF, i.e. the final Ctrl-D)."""
    out, repl = make_repl()
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        run_prompt(repl, FixedSource(), history or FileHistory("/dev/null"), input=pipe,
                   output=DummyOutput())
    return out.getvalue()


def test_prompt_multi_line_clause_ctrl_c_ctrl_d_and_history(tmp_path):
    keys = (
        "BEGIN\r"  # a header: Enter opens the next line
        '{ printf("one\\n");\r'  # braces still open
        "}\r"  # complete: submitted as one clause
        "BEGIN { printf(\"dropped\\n\"); }\x03"  # Ctrl-C drops the line
        ":probes\r"
        "\x04"  # Ctrl-D leaves
    )
    history = FileHistory(str(tmp_path / "history"))
    assert drive(keys, history) == (
        "one\n[1] BEGIN: 0 sites\n"
        '[1] 1 hit, 0 sites: BEGIN { printf("one\\n"); }\n'
    )
    saved = list(FileHistory(str(tmp_path / "history")).load_history_strings())
    assert saved == [":probes", 'BEGIN\n{ printf("one\\n");\n}']


def test_prompt_quit_runs_end_clauses():
    out = drive('END { printf("bye\\n"); }\r:quit\r')
    assert out == "[1] END: 0 sites\nbye\n"


def test_a_map_keeps_its_kind_until_cleared():
    out, repl = make_repl()
    repl.handle("BEGIN { @m = count(); }")
    repl.handle(":del 1")
    repl.handle("BEGIN { @m = hist(5); }")  # @m still holds a count
    repl.handle(":print @m")
    repl.handle(":clear @m")
    repl.handle("BEGIN { @m = hist(5); }")
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["[1] BEGIN: 0 sites", "deleted [1] (1 hit)",
                         "<input>:1:9: error: map @m is count() at line 1; it cannot also be hist()"]
    assert lines[5:8] == ["@m: 1", "cleared @m", "[2] BEGIN: 0 sites"]
    repl.handle(":print @m")
    assert out.getvalue().splitlines()[8:] == [
        "@m: ", "[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
        "",
    ]
