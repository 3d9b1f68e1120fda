"""Tab completion for REPL input: commands, providers, targets, functions, USDT names,
keywords, builtins, maps and variables.

What can be completed depends on where the cursor is: a `:command` line, a probe spec at
the top level (target files after `uprobe:`, function names after `uprobe:LIB:`), or a
clause body. Anything that needs the target (its mapped files, their symbols, the maps in
use) comes from a CompletionSource, so this module never imports the runtime and can be
tested with a fixed source.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from uplang.app.highlight import DECL_WORDS, KEYWORDS
from uplang.vocab.calls import BUILTIN_BY_NAME, FUNCTION_BY_NAME
from uplang.vocab.ctypes import TYPE_WORDS
from uplang.vocab.probetypes import PROBE_TYPES, PROVIDER_ALIASES

MAX_COMPLETIONS = 500
# Spelled as users type them: the long forms, and BEGIN/END without a colon.
PROVIDER_COMPLETIONS = tuple(t.name if t.resolution == "none" else t.name + ":"
                             for t in PROBE_TYPES)
TOP_LEVEL_WORDS = ("sync", "config", *DECL_WORDS)
BODY_WORDS = tuple(sorted({*KEYWORDS, *DECL_WORDS, *TYPE_WORDS, "self"} - {"config", "sync"}))
EXPR_WORDS = ("sizeof", "offsetof", "self", *TYPE_WORDS)
ARG_NAMES = tuple(f"arg{i}" for i in range(6))

_SPEC_START = re.compile(r"(?:^|[\s,])([A-Za-z_]+(?:\$target)?:[^\s,{}]*)$")
_TOP_WORD = re.compile(r"(?:^|[\s,}])([A-Za-z_]*)$")
_BODY_WORD = re.compile(r"(self->[A-Za-z0-9_]*|[@$][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)$")
_MAP_NAMES = re.compile(r"@([A-Za-z_0-9]+)")
_VAR_NAMES = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_TLS_NAMES = re.compile(r"self->([A-Za-z_][A-Za-z0-9_]*)")
# `args.`, `args->req->`, `args.req.le`: the member chain typed so far and the partial name.
_ARGS_CHAIN = re.compile(r"\bargs((?:(?:\.|->)[A-Za-z_][A-Za-z0-9_]*)*)(?:\.|->)([A-Za-z_0-9]*)$")
_CLAUSE_SPEC = re.compile(r"(?:^|[\s,}])(u|uprobe):([^\s:{},]*):([^\s{},]+)[^{}]*\{[^{}]*$")


class CompletionSource(Protocol):
    """What the completer asks about the target and the live session."""

    def mapped_objects(self) -> list[str]:
        """Paths of the executable files mapped in the target (empty when unattached)."""
        ...

    def functions(self, target: str) -> list[str]:
        """Function names of a probe target spelling (path, short name, "" = main)."""
        ...

    def usdt_probes(self, target: str) -> list[tuple[str, str]]:
        """(provider, name) of every USDT note of a target spelling."""
        ...

    def map_names(self) -> list[str]:
        """Bare names of the maps the live clauses use."""
        ...

    def clause_numbers(self) -> list[int]:
        ...

    def members(self, target: str, func: str, chain: Sequence[str]) -> list[str]:
        """`args.` completions from the program's DWARF: the parameters of `func` in
        `target` (chain empty), else the members of the type the chain of names reaches."""
        ...


@dataclass
class FixedSource:
    """A CompletionSource from plain data (no target): for tests and the unattached REPL."""

    objects: list[str] = field(default_factory=list)
    symbols: dict[str, list[str]] = field(default_factory=dict)
    usdt: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    maps: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    # (target, func, chain) -> names
    fields: dict[tuple[str, str, tuple[str, ...]], list[str]] = field(default_factory=dict)

    def mapped_objects(self) -> list[str]:
        return list(self.objects)

    def functions(self, target: str) -> list[str]:
        return list(self.symbols.get(target, []))

    def usdt_probes(self, target: str) -> list[tuple[str, str]]:
        return list(self.usdt.get(target, []))

    def map_names(self) -> list[str]:
        return list(self.maps)

    def clause_numbers(self) -> list[int]:
        return list(self.numbers)

    def members(self, target: str, func: str, chain: Sequence[str]) -> list[str]:
        return list(self.fields.get((target, func, tuple(chain)), []))


@dataclass(frozen=True)
class Command:
    """A REPL command for completion and :help: name with colon, argument, one-line help."""

    name: str
    arg: str
    help: str


class UplangCompleter(Completer):
    """The REPL's completer; `source` answers the questions about the target."""

    def __init__(self, source: CompletionSource, commands: Sequence[Command]) -> None:
        self.source = source
        self.commands = tuple(commands)
        self._paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterator[Completion]:
        before = document.text_before_cursor
        if before.lstrip().startswith(":") and "\n" not in before:
            yield from self._command(before.lstrip(), complete_event)
            return
        state = scan(before)
        if state.in_string or state.in_comment:
            return
        if state.depth == 0 and not state.in_predicate:
            spec = _SPEC_START.search(before)
            if spec:
                yield from _limit(self._spec(spec.group(1)))
                return
            word = _TOP_WORD.search(before)
            if word is not None:
                yield from _starting(word.group(1), (*PROVIDER_COMPLETIONS, *TOP_LEVEL_WORDS))
            return
        args = _ARGS_CHAIN.search(before)
        spec = _CLAUSE_SPEC.search(before) if args else None
        if args and spec:
            chain = [n for n in re.split(r"\.|->", args.group(1)) if n]
            names = self.source.members(spec.group(2), spec.group(3).strip('"'), chain)
            yield from _limit(_starting(args.group(2), sorted(set(names))))
            return
        word = _BODY_WORD.search(before)
        typed = word.group(1) if word else ""
        yield from _limit(self._body(typed, document.text, state.in_predicate))

    # ------------------------------------------------------------------ commands

    def _command(self, text: str, event: CompleteEvent) -> Iterator[Completion]:
        name, sep, arg = text.partition(" ")
        if not sep:
            for c in self.commands:
                if c.name.startswith(name):
                    yield Completion(c.name, -len(name), display_meta=c.help)
            return
        arg = arg.lstrip()
        if name in (":print", ":clear"):
            yield from _starting(arg, [f"@{m}" for m in sorted(set(self.source.map_names()))])
        elif name == ":del":
            yield from _starting(arg, [str(n) for n in self.source.clause_numbers()])
        elif name in (":load", ":save"):
            yield from self._paths.get_completions(Document(arg, len(arg)), event)

    # ------------------------------------------------------------------ probe specs

    def _spec(self, spelled: str) -> Iterator[Completion]:
        provider, _, rest = spelled.partition(":")
        kind = PROVIDER_ALIASES.get(provider, "")
        parts = rest.split(":")
        typed = parts[-1]
        if kind in ("uprobe", "uretprobe"):
            if len(parts) == 1:
                yield from self._targets(typed)
            elif len(parts) == 2:
                yield from _starting(typed, self.source.functions(parts[0]))
        elif kind == "usdt":
            if len(parts) == 1:
                yield from self._targets(typed)
                return
            notes = self.source.usdt_probes(parts[0])
            if len(parts) == 2:
                names = {f"{p}:{n}" for p, n in notes} | {n for _, n in notes}
                yield from _starting(typed, sorted(names))
            elif len(parts) == 3:
                yield from _starting(typed, sorted({n for p, n in notes if p == parts[1]}))

    def _targets(self, typed: str) -> Iterator[Completion]:
        names: dict[str, str] = {}
        for path in self.source.mapped_objects():
            names.setdefault(path, path)
            names.setdefault(os.path.basename(path), path)
        for name in sorted(names):
            if name.startswith(typed):
                yield Completion(name + ":", -len(typed), display=name,
                                 display_meta=names[name] if name != names[name] else "")
        if "/" in typed:
            for c in self._paths.get_completions(Document(typed, len(typed)), CompleteEvent()):
                if c.text:
                    yield c

    # ------------------------------------------------------------------ bodies

    def _body(self, typed: str, text: str, expression: bool) -> Iterator[Completion]:
        if typed.startswith("@"):
            maps = set(self.source.map_names()) | set(_MAP_NAMES.findall(text))
            yield from _starting(typed, sorted(f"@{m}" for m in maps))
        elif typed.startswith("$"):
            yield from _starting(typed, sorted({f"${v}" for v in _VAR_NAMES.findall(text)}))
        elif typed.startswith("self->"):
            yield from _starting(typed, sorted({f"self->{v}" for v in _TLS_NAMES.findall(text)}))
        elif typed:
            # A predicate is one expression: no statement keywords there.
            words = {*BUILTIN_BY_NAME, *ARG_NAMES, *(EXPR_WORDS if expression else BODY_WORDS)}
            yield from _starting(typed, sorted(words))
            for name in sorted(FUNCTION_BY_NAME):
                if name.startswith(typed):
                    yield Completion(name + "(", -len(typed), display=name + "()")


@dataclass(frozen=True)
class ScanState:
    """Where the end of some text is: brace depth, inside a predicate, string or comment."""

    depth: int
    in_predicate: bool
    in_string: bool
    in_comment: bool


def scan(text: str) -> ScanState:
    """Walk the text as the lexer would, far enough to know the context of its end."""
    depth = 0
    in_pred = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                return ScanState(depth, in_pred, True, False)
            i = j + 1
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            if j < 0:
                return ScanState(depth, in_pred, False, True)
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                return ScanState(depth, in_pred, False, True)
            i = j + 2
            continue
        if c == "{":
            depth += 1
            in_pred = False
        elif c == "}":
            depth = max(0, depth - 1)
        elif c == "/" and depth == 0 and (i == 0 or text[i - 1] in " \t\n"):
            # A predicate opens with whitespace before its '/': a probe spec cannot hold one.
            in_pred = True
        i += 1
    return ScanState(depth, in_pred, False, False)


def _starting(typed: str, candidates: Iterable[str]) -> Iterator[Completion]:
    for cand in candidates:
        if cand.startswith(typed) and cand != typed:
            yield Completion(cand, -len(typed))


def _limit(completions: Iterable[Completion]) -> Iterator[Completion]:
    for i, c in enumerate(completions):
        if i >= MAX_COMPLETIONS:
            return
        yield c
