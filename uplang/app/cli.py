"""The `uprobe` command: bpftrace's command-line forms, run/list/repl subcommands.

The front end runs here (parse -> check -> plan); the runtime is imported only on the code
path that needs it, so `--dry-run`, `--help` and script errors work without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TextIO

from uplang import ast
from uplang.app.status import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
from uplang.checks import CheckOptions
from uplang.diagnostics import UplangError
from uplang.plan import FunctionSig, Plan, TypeLayout
from uplang.planner import compile_script
from uplang.planprint import format_plan
from uplang.probes import interpret_listing
from uplang.typeenv import TypeSource

if TYPE_CHECKING:
    from runtime.listing import ProbeQuery


SUBCOMMANDS = ("run", "list", "repl")

EPILOG = """\
forms:
  uprobe run FILE [ARGS...]          run a script; ARGS are $1, $2, ... ($# counts them)
  uprobe run -e PROGRAM [ARGS...]    run a program given on the command line
  uprobe FILE | uprobe -e PROGRAM    the same, spelled as bpftrace does
  uprobe list PATTERN [-p PID] [-v]  list probes matching PATTERN (also: uprobe -l PATTERN)
  uprobe repl [-p PID | -c CMD]      interactive session

examples:
  uprobe -e 'uprobe:libc:malloc { @bytes = hist(arg0); }' -c 'ls /'
  uprobe run examples/malloc_sizes.up -p 1234
  uprobe run --dry-run examples/readline.up
  uprobe -l 'uprobe:libc:str*'
  uprobe -e 'uprobe:libc:write /arg0 == $1/ { @[comm] = count(); }' -c ./server 1

exit status:
  0    success
  1    script or usage error (the script is wrong, or the command line is)
  2    target, permission or runtime error: tracing could not start or failed
  130  interrupted (SIGINT) before the run finished
"""


class UsageError(Exception):
    """A command-line mistake: one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting with status 2 (2 means "runtime" here)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass(frozen=True)
class Streams:
    out: TextIO
    err: TextIO


def _version() -> str:
    from importlib import metadata  # ~60 ms: only --version needs the package metadata

    try:
        return metadata.version("uprobe")
    except metadata.PackageNotFoundError:
        return "0.1.0 (source checkout)"


class _VersionAction(argparse.Action):
    """argparse's "version" action, with the version looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"uprobe {_version()}")
        parser.exit()


def _pid(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return value


def _cpu(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a CPU number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a CPU number: {text!r}")
    return value


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-e", dest="program", metavar="PROGRAM", help="the program text")
    p.add_argument("-c", dest="command", metavar="CMD", help="run CMD and trace it")
    p.add_argument("-p", dest="pid", type=_pid, metavar="PID", help="trace a running process")
    p.add_argument("-f", dest="fmt", choices=("text", "json", "folded"), default="text",
                   help="output format (default: text; folded: flame-graph stacks)")
    p.add_argument("-o", dest="output", metavar="FILE", help="write output to FILE")
    p.add_argument("--trace", dest="trace", metavar="FILE",
                   help="also write a trace for Perfetto UI / chrome://tracing to FILE "
                   "(function slices, printf events, map counters)")
    p.add_argument("-q", dest="quiet", action="store_true", help="quiet: no banner")
    p.add_argument("-v", dest="verbose", action="store_true", help="verbose")
    p.add_argument("--unsafe", action="store_true",
                   help="allow actions that affect the system (system(), signal())")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and exit without touching any process")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    p.add_argument("--no-follow-forks", dest="follow_forks", action="store_false",
                   help="do not trace the children the target forks")
    p.add_argument("--trap", action="store_true",
                   help="place every probe as a trap (int3 + ptrace stop), never as a jump "
                   "into in-target code")
    p.add_argument("--cpu", type=_cpu, metavar="N",
                   help="pin the tracer to CPU N; with -c the program starts pinned there too "
                   "(its own affinity changes); -p targets are never re-pinned")
    p.add_argument("--debug-dir", dest="debug_dirs", action="append", default=[], metavar="DIR",
                   help="look for separate debug files (DIR/.build-id/xx/yyyy.debug) here "
                   "before /usr/lib/debug; repeatable (also: UPROBE_DEBUG_DIRS=DIR:DIR)")
    p.add_argument("--no-demangle", dest="demangle", action="store_false",
                   help="show C++ names mangled, as the symbol table spells them")
    p.add_argument("--comm", dest="comms", action="append", default=[], metavar="NAME",
                   help="system-wide probes (no -c/-p): trace only processes named NAME "
                   "(repeatable)")
    p.add_argument("args", nargs="*", metavar="FILE|ARG",
                   help="the script file (unless -e), then its positional parameters")


def _main_parser() -> _Parser:
    p = _Parser(prog="uprobe", description="DTrace/bpftrace-style probes for user-space "
                "processes, placed with ptrace.", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_VersionAction, nargs=0, help="show program's version number and exit")
    p.add_argument("-l", dest="list_pattern", metavar="PATTERN",
                   help="list probes matching PATTERN")
    _add_run_options(p)
    return p


def _run_parser() -> _Parser:
    p = _Parser(prog="uprobe run", description="Run a script or program.", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_run_options(p)
    return p


def _list_parser() -> _Parser:
    p = _Parser(prog="uprobe list", description="List the probes matching PATTERN, e.g. "
                "'uprobe:libc:malloc*' or 'usdt:./prog'.")
    p.add_argument("pattern", metavar="PATTERN")
    p.add_argument("-p", dest="pid", type=_pid, metavar="PID",
                   help="resolve targets in this process")
    p.add_argument("-v", dest="verbose", action="store_true", help="show details")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    p.add_argument("--debug-dir", dest="debug_dirs", action="append", default=[], metavar="DIR",
                   help="look for separate debug files here before /usr/lib/debug")
    p.add_argument("--no-demangle", dest="demangle", action="store_false",
                   help="list C++ names mangled")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. Returns the exit status (see EPILOG)."""
    args = list(sys.argv[1:] if argv is None else argv)
    streams = Streams(sys.stdout, sys.stderr)
    try:
        return _dispatch(args, streams)
    except UsageError as exc:
        print(f"uprobe: {exc}", file=streams.err)
        print("try 'uprobe --help'", file=streams.err)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _dispatch(args: list[str], streams: Streams) -> int:
    if args and args[0] in SUBCOMMANDS:
        command, rest = args[0], args[1:]
        if command == "list":
            opts = _list_parser().parse_args(rest)
            return list_command(opts.pattern, opts.pid, opts.verbose, opts.debug, streams,
                                opts.demangle, opts.debug_dirs)
        if command == "repl":
            return repl_command(rest, streams)
        return run_command(_run_parser().parse_intermixed_args(rest), streams)
    # bpftrace's `-lv PATTERN` (argparse would read it as -l with the pattern "v").
    args = [part for a in args for part in (("-v", "-l") if a == "-lv" else (a,))]
    opts = _main_parser().parse_intermixed_args(args)
    if opts.list_pattern is not None:
        if opts.program is not None or opts.args:
            raise UsageError("-l takes a pattern and no script")
        return list_command(opts.list_pattern, opts.pid, opts.verbose, opts.debug, streams,
                            opts.demangle, opts.debug_dirs)
    return run_command(opts, streams)


def repl_command(rest: list[str], streams: Streams) -> int:
    """The REPL parses its own flags (prompt_toolkit is loaded only for it)."""
    from uplang.app.repl import main as repl_main

    return repl_main(rest)


def _script(opts: argparse.Namespace) -> tuple[str, str, tuple[str, ...]]:
    """(text, filename, params) from -e or the first positional argument."""
    if opts.program is not None:
        return opts.program, "<program>", tuple(opts.args)
    if not opts.args:
        raise UsageError("no script: give a FILE or -e PROGRAM")
    path, *params = opts.args
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(), path, tuple(params)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot read {path}: {reason}") from None


def plan_from_options(opts: argparse.Namespace) -> Plan:
    """The front end as the command line drives it; raises UplangError or UsageError."""
    if opts.command is not None and opts.pid is not None:
        raise UsageError("give -c CMD or -p PID, not both")
    text, filename, params = _script(opts)
    has_process = opts.command is not None or opts.pid is not None
    options = CheckOptions(
        unsafe=opts.unsafe,
        # A dry run prints the plan whatever the target: process checks apply to real runs.
        has_process=None if opts.dry_run and not has_process else has_process,
        has_command=None if opts.dry_run and not has_process else opts.command is not None,
        params=params,
    )
    return compile_script(text, filename, options, types_for=_program_types(opts))


def _program_types(opts: argparse.Namespace) -> Callable[[ast.Program], TypeSource] | None:
    """A factory of the checks' TypeSource: the program's DWARF, read through the runtime
    only where the script asks (args, casts to its types); None without the runtime."""
    if importlib.util.find_spec("runtime") is None:
        return None
    return lambda program: LazyProgramTypes(program, opts.pid, opts.command,
                                            tuple(opts.debug_dirs))


class LazyProgramTypes:
    """The program's DWARF types, with the DWARF reader imported on the checks' first
    question: most scripts ask none (no args, casts, sizeof of an undeclared struct or
    source-line probe), and importing pyelftools' DWARF costs a third of a second."""

    def __init__(self, program: ast.Program, pid: int | None, command: str | None,
                 roots: tuple[str, ...]) -> None:
        self._args = (program, pid, command, roots)
        self._source: TypeSource | None = None

    def _types(self) -> TypeSource:
        if self._source is None:
            from runtime.dwarf.source import DwarfTypes

            program, pid, command, roots = self._args
            self._source = DwarfTypes.for_program(program, pid=pid, command=command,
                                                  roots=roots)
        return self._source

    def layout(self, name: str) -> TypeLayout | None:
        return self._types().layout(name)

    def signature(self, probe: ast.ProbeSpec) -> FunctionSig | str:
        return self._types().signature(probe)

    def searched(self) -> str:
        return self._types().searched()


def run_command(opts: argparse.Namespace, streams: Streams) -> int:
    try:
        plan = plan_from_options(opts)
    except UplangError as exc:
        print(exc.render(), file=streams.err)
        return EXIT_USAGE
    if opts.dry_run:
        if opts.verbose:
            _explain_paths(plan, opts, streams)
        return _write_plan(plan, opts.output, streams)
    from runtime.executor import RunOptions, run_plan

    options = RunOptions(
        command=opts.command,
        pid=opts.pid,
        fmt=opts.fmt,
        output=opts.output,
        quiet=opts.quiet,
        unsafe=opts.unsafe,
        debug=opts.debug,
        follow_forks=opts.follow_forks,
        verbose=opts.verbose,
        cpu=opts.cpu,
        trap=opts.trap,
        demangle=opts.demangle,
        trace=opts.trace,
        comms=tuple(opts.comms),
    )
    try:
        return run_plan(plan, options)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line, never a traceback
        return report_runtime_error(exc, opts.debug, streams)


def listing_query(pattern: str) -> ProbeQuery:
    """A `-l` pattern read with the script's own probe spellings; raises UsageError."""
    from runtime.listing import ProbeQuery

    res = interpret_listing(pattern)
    if res.problems:
        message, hint = res.problems[0]
        raise UsageError(f"{pattern}: {message}" + (f" ({hint})" if hint else ""))
    f = res.fields
    if f["provider"] == "usdt":
        return ProbeQuery("usdt", str(f["target"]), usdt_provider=str(f.get("usdt_provider", "")),
                          usdt_name=str(f["usdt_name"]))
    if f["provider"]:
        address = f.get("address")
        # An address names no symbol: it lists nothing, as a name that matches nothing.
        func = str(f.get("func") or (f"{address:#x}" if address is not None else "*"))
        return ProbeQuery(str(f["provider"]), str(f["target"]), func=func)
    return ProbeQuery("", str(f["target"]))


def list_command(pattern: str, pid: int | None, verbose: bool, debug: bool,
                 streams: Streams, demangle: bool = True,
                 debug_dirs: Sequence[str] = ()) -> int:
    query = listing_query(pattern)
    from runtime.listing import list_probes

    try:
        lines = list_probes(query, pid, verbose, demangle, tuple(debug_dirs))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001
        return report_runtime_error(exc, debug, streams)
    for line in lines:
        print(line, file=streams.out)
    return EXIT_OK


def report_runtime_error(exc: BaseException, debug: bool, streams: Streams) -> int:
    """The runtime's own errors carry `.message`; anything else is unexpected."""
    from runtime.errors import UprobeError

    message = getattr(exc, "message", None)
    if isinstance(exc, UprobeError) or isinstance(message, str):
        print(f"uprobe: {message}", file=streams.err)
        advice = getattr(exc, "advice", "")
        if advice:
            print(f"uprobe: {advice}", file=streams.err)
    else:
        print(f"uprobe: error: {exc}", file=streams.err)
    if debug:
        traceback.print_exception(exc, file=streams.err)
    return EXIT_RUNTIME


def _explain_paths(plan: Plan, opts: argparse.Namespace, streams: Streams) -> None:
    """--dry-run -v: which path (jump or trap) each probe site takes, and why (stderr)."""
    try:
        from runtime.jump.strategy import explain

        for line in explain(plan, opts.trap, opts.pid):
            print(line, file=streams.err)
    except Exception as exc:  # noqa: BLE001 - a dry run still prints the plan
        report_runtime_error(exc, opts.debug, streams)


def _write_plan(plan: Plan, output: str | None, streams: Streams) -> int:
    text = format_plan(plan)
    if output is None:
        streams.out.write(text)
        return EXIT_OK
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        print(f"uprobe: cannot write {output}: {exc.strerror}", file=streams.err)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
