"""`uprobe repl`: edit probes live against a running process, keeping their state.

Every clause typed is checked together with the clauses already live (so a map keeps one
kind and `self->` variables one type across edits), planned, and handed to
runtime.live.LiveDriver, which compiles it against the session's one map store and
places it at once. `:commands` manage the target and the clauses. The prompt is
prompt_toolkit's (highlighting, completion, multi-line clauses, history); probe output
is printed above it through patch_stdout. Without a terminal, input lines are read from
stdin with the same rules, which makes the REPL scriptable.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shlex
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NoReturn, Protocol

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout

from uplang import ast, unparse
from uplang.app.complete import Command, UplangCompleter, scan
from uplang.app.highlight import BARE_PROVIDERS, ReplLexer
from uplang.app.status import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
from uplang.checks import CheckOptions, CheckResult, check
from uplang.diagnostics import Diagnostic, UplangCheckError, UplangError
from uplang.parser import parse
from uplang.plan import Plan
from uplang.planner import build_plan
from uplang.typeenv import TypeSource
from uplang.vocab.probetypes import PROVIDER_ALIASES

COMMANDS = (
    Command(":attach", "PID", "trace the running process PID and place the live clauses"),
    Command(":spawn", "CMD", "start CMD traced (stdin /dev/null), place the live clauses"),
    Command(":probes", "", "the live clauses, numbered, with hit and site counts"),
    Command(":del", "N", "delete clause N: its breakpoints leave the target"),
    Command(":maps", "", "print every non-empty map"),
    Command(":print", "@MAP", "print one map"),
    Command(":clear", "@MAP", "delete every element of a map"),
    Command(":load", "FILE", "add the clauses of a script file"),
    Command(":save", "FILE", "write the live clauses as a script"),
    Command(":detach", "", "leave the target running as if never probed"),
    Command(":help", "", "this list"),
    Command(":quit", "", "detach and leave (also Ctrl-D)"),
)
HELP_TAIL = """\
Type a clause to attach it at once, e.g.  uprobe:libc:malloc { @bytes = hist(arg0); }
A clause may span lines: Enter submits once the braces are balanced (Esc Enter forces).
Tab completes; Ctrl-C cancels the line; Ctrl-D leaves."""

_PROVIDER_WORDS = "|".join(re.escape(p) for p in sorted(PROVIDER_ALIASES, key=len, reverse=True))
_BARE_WORDS = "|".join(BARE_PROVIDERS)
_HEADER_ONLY = re.compile(rf"^(?:sync\s+)?(?:(?:{_PROVIDER_WORDS}):|(?:{_BARE_WORDS})\b)")
_DEFAULT_HISTORY = "~/.uprobe_history"


class ReplError(Exception):
    """A command the REPL cannot carry out; the message is one line for the user."""


def is_complete(text: str) -> bool:
    """Whether Enter should submit `text`: a command, or language text whose braces,
    strings and comments are closed and that is more than a clause header awaiting its
    body (`uprobe:libc:malloc` then Enter goes on to the next line)."""
    s = text.strip()
    if not s or s.startswith(":"):
        return True
    state = scan(text)
    if state.in_string or state.in_comment or state.depth > 0:
        return False
    if "{" not in s:
        return not _HEADER_ONLY.match(s)
    return True


def clause_text(text: str, span: ast.Span) -> str:
    """The source of a node: from its start to its end, both 1-based, end exclusive."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(line: int, col: int) -> int:
        return starts[min(line, len(lines)) - 1] + col - 1 if lines else 0

    return text[offset(span.line, span.col): offset(span.end_line, span.end_col)]


@dataclass
class LiveScript:
    """The live script as the front end knows it: type definitions and config from earlier
    inputs, and each live clause's AST (parsed as `<clause N>` so a diagnostic that points
    into an older clause can show that clause's text)."""

    config: list[ast.ConfigItem] = field(default_factory=list)
    types: list[ast.TypeDef] = field(default_factory=list)
    clauses: dict[int, ast.Clause] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)
    # self-> variables ever assigned, with their kinds, and what the checks learnt of
    # every map: both outlive the clauses that wrote them (a map until it is cleared).
    thread_locals: dict[str, Any] = field(default_factory=dict)
    map_states: dict[str, Any] = field(default_factory=dict)
    # The text of every clause ever added, for diagnostics that point into a deleted one.
    history: dict[int, str] = field(default_factory=dict)

    def program(self, new: ast.Program) -> ast.Program:
        return ast.Program(
            config=(*self.config, *new.config),
            types=(*self.types, *new.types),
            clauses=(*self.clauses.values(), *new.clauses),
        )

    def sources(self) -> dict[str, str]:
        return {f"<clause {n}>": t for n, t in self.history.items()}

    def script(self) -> str:
        """What `:save` writes: config and types, then the clauses as typed."""
        parts = []
        head = unparse.program(ast.Program(tuple(self.config), tuple(self.types), ()))
        if head.strip():
            parts.append(head.rstrip("\n"))
        parts.extend(self.texts[n].strip() for n in sorted(self.texts))
        return "\n\n".join(parts) + "\n" if parts else ""


class LiveControl(Protocol):
    """What the REPL drives: runtime.live.LiveDriver (the runtime side of live editing).
    `clauses` are its LiveClause objects (number, text, kinds, specs, hits, sites)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def clauses(self) -> Sequence[Any]: ...

    def add(self, plan: Plan, indices: Sequence[int], texts: Sequence[str]) -> list[Any]: ...

    def delete(self, number: int) -> Any: ...

    def attach(self, pid: int) -> int: ...

    def spawn(self, command: str | Sequence[str]) -> int: ...

    def detach(self) -> str: ...

    def print_maps(self) -> int: ...

    def print_map(self, name: str) -> None: ...

    def clear_map(self, name: str) -> None: ...

    def close(self) -> None: ...


class Repl:
    """The REPL's commands and clause handling, apart from any terminal.

    driver: what runs the clauses (LiveControl); out: where the REPL's own lines go (None: the
    current sys.stdout, which patch_stdout redirects while the prompt is shown).
    `handle(text)` takes one submitted input and returns False when the REPL should end.
    """

    def __init__(self, driver: LiveControl, out: IO[str] | None = None, *,
                 unsafe: bool = False, params: tuple[str, ...] = ()) -> None:
        self.driver = driver
        self.out = out
        self.unsafe = unsafe
        self.params = params
        self.script = LiveScript()
        self._closed = False

    # ------------------------------------------------------------------ output

    def say(self, text: str) -> None:
        out = self.out if self.out is not None else sys.stdout
        out.write(text + "\n")
        out.flush()

    # ------------------------------------------------------------------ input

    def handle(self, text: str) -> bool:
        """One submitted input: a `:command` or clauses. Errors are shown, never raised."""
        from runtime.errors import UprobeError

        stripped = text.strip()
        if not stripped:
            return True
        try:
            if stripped.startswith(":"):
                return self.command(stripped)
            self.add(text)
        except UplangError as exc:
            self.say(self._render(exc, text, "<input>"))
        except (ReplError, UprobeError) as exc:
            self.say(f"error: {exc}")
        return True

    def add(self, text: str, filename: str = "<input>") -> list[Any]:
        """Check `text` with the live clauses, then place its clauses; all or nothing."""
        from runtime.live import ProbeNotPlaced

        program = parse(text, filename)
        if not program.clauses:
            if not (program.types or program.config):
                raise ReplError("nothing to add: type a clause, or :help")
            self._keep_definitions(program, text, filename)
            self.say("definitions added")
            return []
        combined = self.script.program(program)
        result = self._check(combined, text)
        plan = build_plan(combined, result, params=self.params, unsafe=self.unsafe)
        first = len(self.script.clauses)
        indices = range(first, first + len(program.clauses))
        texts = [clause_text(text, c.span) for c in program.clauses]
        try:
            added = self.driver.add(plan, indices, texts)
        except ProbeNotPlaced as exc:
            raise self._not_placed(exc, plan, program, first, text) from None
        self.script.thread_locals.update(result.thread_locals)
        self.script.map_states.update(copy.deepcopy(dict(result.map_states)))
        self.script.config.extend(program.config)
        self.script.types.extend(program.types)
        for live, body in zip(added, texts, strict=True):
            self.script.texts[live.number] = body
            self.script.history[live.number] = body
            self.script.clauses[live.number] = parse(body, f"<clause {live.number}>").clauses[0]
            self.say(self._describe_added(live))
        return added

    def _check(self, program: ast.Program, text: str) -> CheckResult:
        """uplang.checks.check, told what earlier clauses (perhaps deleted since) assigned:
        their thread-locals and maps live on, in the target's threads and the map store."""
        options = CheckOptions(unsafe=self.unsafe, params=self.params,
                               known_thread_locals=self.script.thread_locals,
                               known_maps=self.script.map_states,
                               types=self._program_types(program))
        return check(program, options, text)

    def _program_types(self, program: ast.Program) -> TypeSource | None:
        """`args` and the program's types from its DWARF, read through the runtime."""
        try:
            from runtime.dwarf.source import DwarfTypes
        except ImportError:
            return None
        pid = getattr(self.driver, "pid", None)
        return DwarfTypes.for_program(program, pid=pid if isinstance(pid, int) else None)

    @staticmethod
    def _not_placed(exc: Any, plan: Any, program: ast.Program, first: int,
                    text: str) -> UplangError:
        """A resolve/placement error, shown with a caret under the probe as typed."""
        probe = exc.probe
        clause = program.clauses[probe.clause - first]
        spec = clause.probes[plan.clauses[probe.clause].probes.index(probe.id)]
        return UplangError([Diagnostic.at(spec.span, exc.message)], text)

    def _keep_definitions(self, program: ast.Program, text: str, filename: str) -> None:
        # Check the definitions with the live clauses, so a bad struct is refused now.
        if self.script.clauses:
            self._check(self.script.program(program), text)
        self.script.config.extend(program.config)
        self.script.types.extend(program.types)

    def _describe_added(self, live: Any) -> str:
        where = f"{live.sites} site{'' if live.sites == 1 else 's'}"
        needs_process = ("uprobe", "uretprobe", "usdt", "interval", "profile")
        if self.driver.pid is None and any(k in needs_process for k in live.kinds):
            where = "not placed: no process (:attach PID or :spawn CMD)"
        return f"[{live.number}] {', '.join(live.specs)}: {where}"

    def _render(self, exc: UplangError, text: str, filename: str) -> str:
        sources = self.script.sources()
        sources[filename] = text
        if not isinstance(exc, UplangCheckError):
            return exc.render()
        return "\n".join(d.render(sources.get(d.file, exc.source)) for d in exc.diagnostics)

    # ------------------------------------------------------------------ commands

    def command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        handler = getattr(self, f"cmd_{name[1:]}", None)
        if handler is None or name not in {c.name for c in COMMANDS}:
            raise ReplError(f"unknown command '{name}' (try :help)")
        return handler(arg) is not False

    def cmd_attach(self, arg: str) -> None:
        if not arg.isdigit() or int(arg) <= 0:
            raise ReplError(":attach needs a process id, e.g. :attach 1234")
        pid = self.driver.attach(int(arg))
        self.say(f"attached to pid {pid}{self._placed()}")

    def cmd_spawn(self, arg: str) -> None:
        try:
            argv = shlex.split(arg)
        except ValueError as exc:
            raise ReplError(f":spawn: {exc}") from None
        if not argv:
            raise ReplError(":spawn needs a command, e.g. :spawn ./server --port 8080")
        pid = self.driver.spawn(argv)
        self.say(f"started pid {pid}{self._placed()}")

    def _placed(self) -> str:
        live = [c for c in self.driver.clauses if c.sites]
        return f"; {len(live)} clause{'' if len(live) == 1 else 's'} placed" if live else ""

    def cmd_probes(self, arg: str) -> None:
        if not self.driver.clauses:
            self.say("no live clauses")
            return
        for c in self.driver.clauses:
            one_line = " ".join(c.text.split())
            self.say(f"[{c.number}] {c.hits} hit{'' if c.hits == 1 else 's'}, "
                     f"{c.sites} site{'' if c.sites == 1 else 's'}: {one_line}")

    def cmd_del(self, arg: str) -> None:
        if not arg.isdigit():
            raise ReplError(":del needs a clause number (see :probes)")
        number = int(arg)
        gone = self.driver.delete(number)
        self.script.clauses.pop(number, None)
        self.script.texts.pop(number, None)
        self.say(f"deleted [{number}] ({gone.hits} hit{'' if gone.hits == 1 else 's'})")

    def cmd_maps(self, arg: str) -> None:
        if not self.driver.print_maps():
            self.say("no maps with values")

    def cmd_print(self, arg: str) -> None:
        self.driver.print_map(_map_name(arg, ":print"))

    def cmd_clear(self, arg: str) -> None:
        name = _map_name(arg, ":clear")
        self.driver.clear_map(name)
        # Empty now: a later clause may use the name for another kind of map.
        self.script.map_states.pop(name, None)
        self.say(f"cleared @{name}")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            raise ReplError(":load needs a file name")
        path = os.path.expanduser(arg)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplError(f"cannot read {arg}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            self.add(text, path)
        except UplangError as exc:
            self.say(self._render(exc, text, path))

    def cmd_save(self, arg: str) -> None:
        if not arg:
            raise ReplError(":save needs a file name")
        text = self.script.script()
        try:
            with open(os.path.expanduser(arg), "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise ReplError(f"cannot write {arg}: {exc.strerror}") from None
        n = len(self.script.texts)
        self.say(f"saved {n} clause{'' if n == 1 else 's'} to {arg}")

    def cmd_detach(self, arg: str) -> None:
        pid = self.driver.pid
        self.driver.detach()
        self.say(f"detached from pid {pid}")

    def cmd_help(self, arg: str) -> None:
        width = max(len(f"{c.name} {c.arg}") for c in COMMANDS)
        for c in COMMANDS:
            self.say(f"  {(c.name + ' ' + c.arg).ljust(width)}  {c.help}")
        self.say(HELP_TAIL)

    def cmd_quit(self, arg: str) -> bool:
        return False

    def close(self) -> None:
        """Leaving: END clauses run, the target is detached and runs on (once)."""
        if not self._closed:
            self._closed = True
            self.driver.close()


def _map_name(arg: str, command: str) -> str:
    if not re.fullmatch(r"@[A-Za-z_0-9]*", arg):
        raise ReplError(f"{command} needs a map, e.g. {command} @bytes")
    return arg[1:]


# ------------------------------------------------------------------ the terminal


def key_bindings() -> KeyBindings:
    """Enter submits complete input and opens a new line otherwise; Esc Enter submits."""
    kb = KeyBindings()

    @kb.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buf = event.current_buffer
        if buf.complete_state is not None and buf.complete_state.current_completion:
            buf.apply_completion(buf.complete_state.current_completion)
            return
        if is_complete(buf.text):
            buf.validate_and_handle()
        else:
            buf.insert_text("\n")

    @kb.add("escape", "enter")
    def _submit(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    return kb


def prompt_session(repl: Repl, source: Any, history: History, *,
                   input: Input | None = None, output: Output | None = None) -> PromptSession:
    def message() -> str:
        pid = repl.driver.pid
        return f"uprobe[{pid}]> " if pid is not None else "uprobe> "

    def continuation(width: int, line_number: int, wrap_count: int) -> str:
        return "... ".rjust(width)

    return PromptSession(
        message=message,
        multiline=True,
        key_bindings=key_bindings(),
        lexer=PygmentsLexer(ReplLexer),
        completer=UplangCompleter(source, COMMANDS),
        complete_while_typing=False,
        history=history,
        prompt_continuation=continuation,
        input=input,
        output=output,
        enable_history_search=False,
    )


def run_prompt(repl: Repl, source: Any, history: History, *, input: Input | None = None,
               output: Output | None = None) -> None:
    """The interactive loop: until :quit or Ctrl-D; Ctrl-C drops the line being typed."""
    session = prompt_session(repl, source, history, input=input, output=output)
    try:
        with patch_stdout(raw=True):
            while True:
                try:
                    text = session.prompt()
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    break
                try:
                    if not repl.handle(text):
                        break
                except KeyboardInterrupt:
                    repl.say("interrupted")
    finally:
        repl.close()


def run_lines(repl: Repl, lines: Iterable[str]) -> None:
    """Input without a terminal: lines gather until they form a complete input."""
    pending = ""
    try:
        for line in lines:
            pending += line if line.endswith("\n") else line + "\n"
            if is_complete(pending):
                text, pending = pending, ""
                if not repl.handle(text):
                    return
        if pending.strip():
            repl.handle(pending)
    finally:
        repl.close()


def history_for(path: str | None) -> History:
    path = os.path.expanduser(path or os.environ.get("UPROBE_HISTORY") or _DEFAULT_HISTORY)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(path)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ReplError(message)


def _parser() -> _Parser:
    p = _Parser(prog="uprobe repl", description="Edit probes live against one process.",
                epilog=HELP_TAIL, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_mutually_exclusive_group()
    group.add_argument("-p", dest="pid", type=int, metavar="PID", help="attach to PID")
    group.add_argument("-c", dest="command", metavar="CMD", help="start CMD traced")
    p.add_argument("--unsafe", action="store_true",
                   help="allow actions that affect the system (system(), signal())")
    p.add_argument("--history", metavar="FILE",
                   help="history file (default: $UPROBE_HISTORY or ~/.uprobe_history)")
    p.add_argument("args", nargs="*", metavar="ARG", help="positional parameters $1, $2, ...")
    return p


def _leave(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """`uprobe repl [-p PID | -c CMD]`; returns the exit status."""
    from runtime.errors import UprobeError
    from runtime.live import LiveDriver, LiveSymbols

    try:
        opts = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except ReplError as exc:
        print(f"uprobe repl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    # SIGTERM and a closed terminal end the REPL like :quit does: detached, text restored.
    previous = {sig: signal.signal(sig, _leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    driver = LiveDriver(unsafe=opts.unsafe, params=tuple(opts.args))
    repl = Repl(driver, unsafe=opts.unsafe, params=tuple(opts.args))
    try:
        if opts.pid is not None:
            repl.cmd_attach(str(opts.pid))
        elif opts.command is not None:
            repl.cmd_spawn(opts.command)
        if sys.stdin.isatty():
            run_prompt(repl, LiveSymbols(driver), history_for(opts.history))
        else:
            run_lines(repl, sys.stdin)
    except (ReplError, UprobeError) as exc:
        print(f"uprobe repl: error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        repl.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
