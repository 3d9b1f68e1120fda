"""Semantic checks: one visitor over the AST that collects every error it can find.

Besides judging the script it infers what the planner needs: each map's key shape and value
kind, and the C layouts of in-script types. Expression kinds are coarse on purpose ('int',
'str', 'ptr' to a known C type, 'tuple', ...): enough to catch what bpftrace's semantic
analyser catches, without a full C type system.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from uplang import ast
from uplang.astwalk import walk
from uplang.diagnostics import Diagnostic, UplangCheckError, did_you_mean
from uplang.formats import INT_CONVERSIONS, FormatError, conversions
from uplang.layout import Layouts, lay_out
from uplang.plan import FunctionSig, MapDecl, ValueType
from uplang.probes import interpret, split_raw
from uplang.typeenv import TypeSource
from uplang.vocab.calls import (
    AGGREGATIONS,
    ALL_KINDS,
    ARG,
    ARG_RE,
    BUILTIN_BY_NAME,
    CONFIG_KEYS,
    FUNCTION_BY_NAME,
    KERNEL_NAMES,
    MAX_ARG,
    SCALAR_AGGREGATIONS,
    SIGNALS,
    USTACK_MODES,
    Word,
    all_names,
)
from uplang.vocab.probetypes import BY_NAME, PROVIDERS, THREAD_KINDS, thread_kinds_text
from uplang.vocab.registers import REGISTERS

MAX_UNROLL = 100
# Statements nested deeper than this are refused: the generated handler nests one level
# per block, and Python compiles at most 100.
MAX_NESTING = 48
# Integer settings with an upper limit (max_strlen: bytes read per string at each hit).
CONFIG_LIMITS = {"max_strlen": 1 << 20}
MAX_LOOP_NESTING = 16
_NUMERIC_PARAM = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|[0-9]+)")


@dataclass(frozen=True)
class CheckOptions:
    """What the command line knows; None means "not known here", and skips that check."""

    unsafe: bool = False
    has_process: bool | None = None  # -p or -c given
    has_command: bool | None = None  # -c given
    params: tuple[str, ...] | None = None
    # What earlier inputs (the REPL's live clauses) established and still holds: thread-local
    # kinds by name (uplang.checks.Ty) and map states by name (uplang.checks.MapState).
    known_thread_locals: Mapping[str, Ty] | None = None
    known_maps: Mapping[str, MapState] | None = None
    # The program's own types (DWARF) for `args`, casts and members; None: script types only.
    types: TypeSource | None = None


# The coarse kind of a value (ctype for pointers and struct values from casts): the plan's
# ValueType, so that what the checks inferred reaches the handler compiler as it is.
Ty = ValueType


INT = Ty("int")
STR = Ty("str")
VOID = Ty("void")
UNKNOWN = Ty("unknown")
_INTLIKE = frozenset({"int", "ptr", "unknown"})
_DESCRIBE = {
    "int": "an integer", "str": "a string", "ptr": "a pointer", "struct": "a struct value",
    "tuple": "a tuple", "stack": "a stack", "usym": "a symbol", "buf": "a buffer",
    "void": "no value", "agg": "an aggregation", "unknown": "a value",
    "args": "the arguments (a struct value)",
    "timestamp": "a timestamp (strftime)",
}


def describe(ty: Ty) -> str:
    return _DESCRIBE.get(ty.kind, ty.kind)


def compatible(a: Ty, b: Ty) -> bool:
    if "unknown" in (a.kind, b.kind):
        return True
    if a.kind in _INTLIKE and b.kind in _INTLIKE:
        return True
    return a.kind == b.kind


@dataclass
class MapState:
    """What the script has told us about one map so far, and where it said it first."""

    name: str
    key_kinds: list[str] | None = None
    key_span: ast.Span | None = None
    value: str | None = None  # an aggregation name or a plain kind
    value_span: ast.Span | None = None
    aggregation: bool = False
    lhist_args: tuple[int, int, int] | None = None
    hist_bits: int | None = None  # hist(x, bits): one map, one bucket layout
    value_ty: Ty | None = None  # a plain value's full type (tuple items, ...)
    written: bool = False


@dataclass(frozen=True)
class MapRead:
    name: str
    arity: int | None  # None: the whole map (print, clear, for)
    span: ast.Span
    as_value: bool


@dataclass(frozen=True)
class CheckResult:
    """maps and layouts feed the planner; thread_locals and map_states are what a later
    check of more clauses needs to know (CheckOptions.known_thread_locals/known_maps)."""

    maps: tuple[MapDecl, ...]
    layouts: Layouts
    thread_locals: Mapping[str, Ty] = field(default_factory=dict)
    map_states: Mapping[str, MapState] = field(default_factory=dict)
    signatures: Mapping[int, FunctionSig] = field(default_factory=dict)  # by clause index


def check(program: ast.Program, options: CheckOptions | None = None,
          source: str | None = None) -> CheckResult:
    """Check the whole program; raise UplangCheckError carrying every problem found."""
    checker = Checker(program, options or CheckOptions())
    checker.run()
    if checker.errors:
        unique = sorted(set(checker.errors), key=lambda d: (d.file, d.line, d.col, d.message))
        raise UplangCheckError(unique, source)
    return CheckResult(checker.map_decls(), checker.layouts, dict(checker.thread_locals),
                       copy.deepcopy(checker.maps), dict(checker.signatures))


def const_int(expr: ast.Expr) -> int | None:
    """The value of an integer literal, possibly negated; None for anything else."""
    if isinstance(expr, ast.Int):
        return expr.value
    if isinstance(expr, ast.Unary) and expr.op in "-+":
        inner = const_int(expr.operand)
        return None if inner is None else (-inner if expr.op == "-" else inner)
    return None


def _line(span: ast.Span | None) -> int:
    return span.line if span is not None else 0


def map_label(name: str) -> str:
    return f"@{name}"


@dataclass
class Checker:
    program: ast.Program
    options: CheckOptions
    errors: list[Diagnostic] = field(default_factory=list)
    maps: dict[str, MapState] = field(default_factory=dict)
    reads: list[MapRead] = field(default_factory=list)
    thread_locals: dict[str, Ty] = field(default_factory=dict)
    assigned_thread_locals: set[str] = field(default_factory=set)
    # per clause
    kinds: frozenset[str] = frozenset()
    clause_label: str = ""
    vars: dict[str, Ty] = field(default_factory=dict)
    loops: int = 0
    unrolls: int = 0
    clause_index: int = 0
    clause_probes: tuple[ast.ProbeSpec, ...] = ()
    signatures: dict[int, FunctionSig] = field(default_factory=dict)
    sig_failed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.layouts = lay_out(self.program.types)
        self.layouts.source = self.options.types
        known_tl = self.options.known_thread_locals or {}
        self.thread_locals.update(known_tl)
        self.assigned_thread_locals.update(known_tl)
        # Copies: the checks update map states as they learn, the caller's stay as given.
        self.maps.update(copy.deepcopy(dict(self.options.known_maps or {})))
        self.enums = {
            ident: value
            for t in self.program.types if t.kind == "enum"
            for ident, value in t.enumerators
        }

    def error(self, span: ast.Span, message: str, hint: str = "") -> None:
        self.errors.append(Diagnostic.at(span, message, hint))

    # ---------------------------------------------------------------- program

    def run(self) -> None:
        self.errors.extend(self.layouts.problems)
        self.config()
        for node in walk(self.program):
            if isinstance(node, ast.Assign | ast.IncDec) and isinstance(
                node.target, ast.ThreadLocal
            ):
                self.assigned_thread_locals.add(node.target.name)
        if not self.program.clauses:
            self.error(self.program.span, "the script has no probes",
                       "add a clause such as: uprobe:libc:malloc { @ = count(); }")
        for index, clause in enumerate(self.program.clauses):
            self.clause_index = index
            self.clause(clause)
        self.check_reads()

    def config(self) -> None:
        seen: set[str] = set()
        for item in self.program.config:
            if item.name in seen:
                self.error(item.span, f"config '{item.name}' is set twice")
            seen.add(item.name)
            spec = CONFIG_KEYS.get(item.name)
            if spec is None:
                self.error(item.span, f"unknown config setting '{item.name}'",
                           did_you_mean(item.name, CONFIG_KEYS))
            elif spec == "int":
                limit = CONFIG_LIMITS.get(item.name)
                if not isinstance(item.value, int) or item.value <= 0:
                    self.error(item.span, f"config '{item.name}' needs a positive integer")
                elif limit is not None and item.value > limit:
                    self.error(item.span, f"config '{item.name}' is {item.value}, beyond its "
                                          f"limit of {limit}")
            elif spec == "bool":
                if item.value not in (0, 1, "true", "false"):
                    self.error(item.span, f"config '{item.name}' needs true or false")
            elif item.value not in spec.split("|"):
                choices = ", ".join(spec.split("|"))
                self.error(item.span, f"config '{item.name}' must be one of: {choices}")

    # ---------------------------------------------------------------- clauses

    def clause(self, clause: ast.Clause) -> None:
        self.kinds = frozenset(p.provider for p in clause.probes if p.provider in PROVIDERS)
        self.clause_label = ", ".join(sorted(k for k in self.kinds))
        self.vars = {}
        self.loops = self.unrolls = 0
        self.depth = 0
        self.clause_probes = clause.probes
        for probe in clause.probes:
            self.probe(probe)
        if clause.sync and self.kinds - THREAD_KINDS:
            self.error(clause.span, "'sync' needs probes that stop a thread",
                       "BEGIN, END and interval probes have no target thread to keep stopped")
        if clause.predicate is not None:
            ty = self.expr(clause.predicate)
            if ty.kind not in _INTLIKE:
                self.error(clause.predicate.span,
                           f"a predicate must be an integer condition, not {describe(ty)}")
        self.stmts(clause.body)

    def probe(self, probe: ast.ProbeSpec) -> None:
        if probe.raw:
            provider, segments = split_raw(probe.raw)
            for message, hint in interpret(provider, segments).problems:
                self.error(probe.span, message, hint)
        elif probe.provider not in PROVIDERS:
            self.error(probe.span, f"unknown probe type '{probe.provider}'",
                       did_you_mean(probe.provider, PROVIDERS))
        if (
            probe.provider in BY_NAME
            and BY_NAME[probe.provider].has_sites
            and not probe.target
            and self.options.has_process is False
        ):
            self.error(probe.span, "a probe without a target needs a process",
                       "give -p PID or -c CMD, or name the target (a path or a library)")

    # ---------------------------------------------------------------- statements

    def stmts(self, body: tuple[ast.Stmt, ...]) -> None:
        self.depth += 1
        if self.depth == MAX_NESTING + 1 and body:
            self.error(body[0].span, f"statements nested more than {MAX_NESTING} levels deep "
                                     "(if, while, for, unroll, blocks): the limit of nesting")
        try:
            for stmt in body:
                self.stmt(stmt)
        finally:
            self.depth -= 1

    def stmt(self, stmt: ast.Stmt) -> None:
        match stmt:
            case ast.ExprStmt(expr=ast.Call() as call):
                self.call(call, statement=True)
            case ast.ExprStmt(expr=expr):
                self.expr(expr)
            case ast.Assign():
                self.assign(stmt)
            case ast.If(cond=cond, then=then, orelse=orelse):
                self.condition(cond)
                self.stmts(then)
                self.stmts(orelse)
            case ast.While(cond=cond, body=body):
                self.condition(cond)
                self.loops += 1
                self.loop_depth(stmt)
                self.stmts(body)
                self.loops -= 1
            case ast.ForMap():
                self.for_map(stmt)
            case ast.Unroll(count=count, body=body):
                if not 1 <= count <= MAX_UNROLL:
                    self.error(stmt.span, f"unroll count must be between 1 and {MAX_UNROLL}")
                self.unrolls += 1
                self.loop_depth(stmt)
                self.stmts(body)
                self.unrolls -= 1
            case ast.Break() | ast.Continue():
                if not self.loops:
                    word = "break" if isinstance(stmt, ast.Break) else "continue"
                    self.error(stmt.span, f"'{word}' outside a while or for loop")
            case ast.Return():
                pass
            case ast.Block(body=body):
                self.stmts(body)

    def condition(self, cond: ast.Expr) -> None:
        ty = self.expr(cond)
        if ty.kind not in _INTLIKE:
            self.error(cond.span, f"a condition must be an integer, not {describe(ty)}")

    def for_map(self, stmt: ast.ForMap) -> None:
        self.reads.append(MapRead(stmt.map, None, stmt.span, False))
        state = self.maps.get(stmt.map)
        value = self.map_value_ty(state) if state else UNKNOWN
        key = UNKNOWN
        if state and state.key_kinds and len(state.key_kinds) == 1:
            key = Ty(state.key_kinds[0]) if state.key_kinds[0] != "unknown" else UNKNOWN
        elif state and state.key_kinds:
            key = Ty("tuple", items=tuple(Ty(k) for k in state.key_kinds))
        self.vars[stmt.var] = Ty("tuple", items=(key, value))
        self.loops += 1
        self.loop_depth(stmt)
        self.stmts(stmt.body)
        self.loops -= 1

    def loop_depth(self, stmt: ast.Stmt) -> None:
        """Loops (while, for, unroll) nest at most MAX_LOOP_NESTING deep: each is a loop
        of the generated handler, and Python compiles at most 20 nested blocks."""
        if self.loops + self.unrolls == MAX_LOOP_NESTING + 1:
            self.error(stmt.span, f"loops nested more than {MAX_LOOP_NESTING} deep (while, "
                                  "for, unroll): the limit of loop nesting")

    def assign(self, stmt: ast.Assign) -> None:
        target, value = stmt.target, stmt.value
        if isinstance(target, ast.MapRef) and isinstance(value, ast.Call) and (
            value.name in AGGREGATIONS
        ):
            if stmt.op != "=":
                self.error(stmt.span, f"{value.name}() is assigned with '=', not '{stmt.op}'")
            self.call(value, aggregation_ok=True)
            self.map_write(target, value.name, stmt.span, aggregation=True,
                           lhist_args=self.lhist_args(value), hist_bits=self.hist_bits(value))
            return
        ty = self.expr(value)
        if ty.kind == "void":
            self.error(value.span, "this expression has no value to assign")
            ty = UNKNOWN
        compound = stmt.op != "="
        if compound and ty.kind not in _INTLIKE:
            self.error(value.span, f"'{stmt.op}' needs an integer, not {describe(ty)}")
        match target:
            case ast.Var(name=name):
                if compound:
                    self.var_read(target)
                elif name in self.vars and not compatible(self.vars[name], ty):
                    self.error(stmt.span, f"${name} holds {describe(self.vars[name])}; "
                                          f"cannot assign {describe(ty)}")
                self.vars[name] = INT if compound else ty
            case ast.ThreadLocal(name=name):
                self.thread_local(target)
                old = self.thread_locals.get(name)
                if old is not None and not compatible(old, ty):
                    self.error(stmt.span, f"self->{name} holds {describe(old)}; "
                                          f"cannot assign {describe(ty)}")
                self.thread_locals[name] = INT if compound else ty
            case ast.MapRef():
                kind = "int" if compound else self.plain_kind(ty)
                self.map_write(target, kind, stmt.span, aggregation=False)
                state = self.maps[target.name]
                if state.value_ty is None or state.value_ty.kind == "unknown":
                    state.value_ty = INT if compound or ty.kind == "ptr" else ty
            case _:
                self.expr(target)
                self.error(target.span, "cannot assign to this expression",
                           "assign to a $variable, an @map element or a self->variable")

    @staticmethod
    def plain_kind(ty: Ty) -> str:
        return {"ptr": "int", "args": "struct"}.get(ty.kind, ty.kind)

    @staticmethod
    def hist_bits(call: ast.Call) -> int | None:
        if call.name != "hist":
            return None
        return const_int(call.args[1]) if len(call.args) > 1 else 0

    def lhist_args(self, call: ast.Call) -> tuple[int, int, int] | None:
        if call.name != "lhist" or len(call.args) != 4:
            return None
        values = [const_int(a) for a in call.args[1:]]
        if any(v is None for v in values):
            return None
        lo, hi, step = values
        return (lo, hi, step)  # type: ignore[return-value]

    # ---------------------------------------------------------------- maps

    def map_keys(self, ref: ast.MapRef) -> list[str]:
        return [self.plain_kind(self.expr(k)) for k in ref.keys]

    def record_key_shape(self, ref: ast.MapRef, kinds: list[str]) -> None:
        state = self.maps.setdefault(ref.name, MapState(ref.name))
        if state.key_kinds is None:
            state.key_kinds, state.key_span = kinds, ref.span
            return
        label = map_label(ref.name)
        if len(state.key_kinds) != len(kinds):
            self.error(ref.span, f"map {label} is used with {_keys(len(kinds))} here but with "
                                 f"{_keys(len(state.key_kinds))} at line {_line(state.key_span)}")
            return
        for i, (old, new) in enumerate(zip(state.key_kinds, kinds, strict=True)):
            if compatible(Ty(old), Ty(new)):
                if old == "unknown":
                    state.key_kinds[i] = new
                continue
            self.error(ref.keys[i].span, f"key {i + 1} of map {label} is {describe(Ty(new))} "
                                         f"here but {describe(Ty(old))} at line "
                                         f"{_line(state.key_span)}")

    def map_write(self, ref: ast.MapRef, kind: str, span: ast.Span, *, aggregation: bool,
                  lhist_args: tuple[int, int, int] | None = None,
                  hist_bits: int | None = None) -> None:
        self.record_key_shape(ref, self.map_keys(ref))
        state = self.maps[ref.name]
        state.written = True
        label = map_label(ref.name)
        if state.value is None:
            state.value, state.value_span, state.aggregation = kind, span, aggregation
            state.lhist_args = lhist_args
            state.hist_bits = hist_bits
            return
        where = f"line {_line(state.value_span)}"
        if state.aggregation and aggregation:
            if state.value != kind:
                self.error(span, f"map {label} is {state.value}() at {where}; "
                                 f"it cannot also be {kind}()")
            elif lhist_args and state.lhist_args and lhist_args != state.lhist_args:
                self.error(span, f"map {label} uses lhist() with different bounds at {where}")
            elif None not in (hist_bits, state.hist_bits) and hist_bits != state.hist_bits:
                self.error(span, f"map {label} uses hist() with {hist_bits} bits here but "
                                 f"{state.hist_bits} at {where}")
        elif state.aggregation != aggregation:
            agg = state.value if state.aggregation else kind
            self.error(span, f"map {label} mixes the aggregation {agg}() with plain "
                             f"assignment ({where})",
                       "a map holds either an aggregation or assigned values")
        elif not compatible(Ty(state.value), Ty(kind)):
            self.error(span, f"map {label} holds {describe(Ty(state.value))} ({where}); "
                             f"cannot store {describe(Ty(kind))}")
        elif state.value == "unknown":
            state.value = kind

    def map_read(self, ref: ast.MapRef, whole: bool = False) -> Ty:
        if whole and not ref.keys:
            self.reads.append(MapRead(ref.name, None, ref.span, False))
        else:
            kinds = self.map_keys(ref)
            self.reads.append(MapRead(ref.name, len(kinds), ref.span, True))
            if ref.name in self.maps:
                self.record_key_shape(ref, kinds)
        state = self.maps.get(ref.name)
        return self.map_value_ty(state) if state else UNKNOWN

    @staticmethod
    def map_value_ty(state: MapState) -> Ty:
        if state.value is None or state.value == "unknown":
            return UNKNOWN
        if state.aggregation:
            return INT if state.value in SCALAR_AGGREGATIONS else Ty("agg")
        return Ty(state.value)

    def check_reads(self) -> None:
        written = {n for n, s in self.maps.items() if s.written}
        for read in self.reads:
            label = map_label(read.name)
            state = self.maps.get(read.name)
            if state is None or not state.written:
                hint = did_you_mean(label, (map_label(n) for n in written))
                self.error(read.span, f"map {label} is used but never assigned", hint)
                continue
            if not read.as_value:
                continue
            arity = len(state.key_kinds or ())
            if read.arity != arity:
                self.error(read.span, f"map {label} has {_keys(arity)}; "
                                      f"it is read here with {_keys(read.arity or 0)}")
            elif state.aggregation and state.value not in SCALAR_AGGREGATIONS:
                self.error(read.span, f"map {label} holds {state.value}(), which can only be "
                                      f"printed", f"use print({label})")

    def map_decls(self) -> tuple[MapDecl, ...]:
        decls = []
        for name in sorted(self.maps):
            state = self.maps[name]
            kinds = tuple("any" if k == "unknown" else k for k in state.key_kinds or ())
            value = state.value if state.value not in (None, "unknown") else "any"
            value_ty = state.value_ty if not state.aggregation and value != "any" else None
            decls.append(MapDecl(name, len(kinds), kinds, value, state.lhist_args, value_ty))
        return tuple(decls)

    # ---------------------------------------------------------------- expressions

    def expr(self, e: ast.Expr) -> Ty:
        match e:
            case ast.Int():
                return INT
            case ast.Str():
                return STR
            case ast.Builtin():
                return self.builtin(e)
            case ast.Positional():
                return self.positional(e)
            case ast.Var():
                return self.var_read(e)
            case ast.ThreadLocal():
                self.thread_local(e)
                if e.name not in self.assigned_thread_locals:
                    self.error(e.span, f"self->{e.name} is used but never assigned",
                               did_you_mean(e.name, self.assigned_thread_locals))
                return self.thread_locals.get(e.name, UNKNOWN)
            case ast.MapRef():
                return self.map_read(e)
            case ast.Call():
                return self.call(e)
            case ast.Unary():
                return self.unary(e)
            case ast.IncDec():
                return self.incdec(e)
            case ast.Binary():
                return self.binary(e)
            case ast.Ternary():
                self.condition(e.cond)
                then, orelse = self.expr(e.then), self.expr(e.orelse)
                if not compatible(then, orelse):
                    self.error(e.span, f"the branches of '?:' differ: {describe(then)} "
                                       f"and {describe(orelse)}")
                return then
            case ast.Cast():
                return self.cast(e)
            case ast.FieldAccess():
                return self.field_access(e)
            case ast.Index():
                return self.index(e)
            case ast.Tuple():
                return Ty("tuple", items=tuple(self.expr(i) for i in e.items))
            case ast.TupleIndex():
                return self.tuple_index(e)
            case ast.Offsetof():
                self.offsetof(e)
                return INT
            case ast.Sizeof():
                if isinstance(e.target, ast.TypeRef):
                    self.type_ref(e.target, e.span)
                else:
                    self.expr(e.target)
                return INT
        return UNKNOWN

    def builtin(self, e: ast.Builtin) -> Ty:
        name = e.name
        match = ARG_RE.fullmatch(name)
        if match:
            if int(match.group(1)) > MAX_ARG:
                self.error(e.span, f"'{name}' is out of range: arguments go up to arg{MAX_ARG}")
            self.where_word(e.span, name, ARG)
            return INT
        if name in BUILTIN_BY_NAME:
            info = BUILTIN_BY_NAME[name]
            hint = "use uretprobe: to see the return value" if name == "retval" else ""
            self.where_word(e.span, name, info, hint)
            if name == "cpid" and self.options.has_command is False:
                self.error(e.span, "'cpid' needs a command started with -c")
            return Ty(info.result)
        if name in self.enums:
            return INT
        if name == "args":
            return self.args(e.span)
        if name in KERNEL_NAMES:
            self.kernel_only(e.span, name)
        elif name in FUNCTION_BY_NAME:
            self.error(e.span, f"'{name}' is a function; call it as {name}()")
        else:
            hint = did_you_mean(name, all_names() | set(self.enums))
            self.error(e.span, f"unknown builtin '{name}'", hint)
        return UNKNOWN

    # ---------------------------------------------------------------- DWARF args

    def signature(self, span: ast.Span, what: str) -> FunctionSig | None:
        """The clause's function signature from the program's DWARF (one for all of its
        probes); reports why not once per clause."""
        index = self.clause_index
        if index in self.signatures:
            return self.signatures[index]
        if index in self.sig_failed:
            return None
        probes = [p for p in self.clause_probes if p.provider in ("uprobe", "uretprobe")]
        problem = ""
        sig: FunctionSig | None = None
        if not probes or len(probes) != len(self.clause_probes):
            problem = f"'{what}' needs uprobe or uretprobe probes"
        elif self.options.types is None:
            problem = f"'{what}' needs the program's debug info, which is not read here"
        else:
            for probe in probes:
                got = self.options.types.signature(probe)
                if isinstance(got, str):
                    problem, sig = got, None
                    break
                if sig is not None and got != sig:
                    problem, sig = ("the functions of this clause have different parameters: "
                                    "'args' needs one signature per clause"), None
                    break
                sig = got
        if sig is None:
            self.sig_failed.add(index)
            self.error(span, problem)
            return None
        self.signatures[index] = sig
        return sig

    def args(self, span: ast.Span) -> Ty:
        if not self.args_here(span):
            return UNKNOWN
        sig = self.signature(span, "args")
        if sig is None:
            return UNKNOWN
        for param in sig.params:
            if param.index is None and param.location is None:
                self.error(span, f"'args' includes '{param.name}', {param.note}: it cannot "
                                 f"be read", "use the other arguments by name: args.NAME")
                return UNKNOWN
        return Ty("args")

    def args_here(self, span: ast.Span) -> bool:
        if self.kinds == {"uprobe"}:
            return True
        if "uretprobe" in self.kinds:
            self.error(span, "'args' in a uretprobe: the arguments are gone when the "
                             "function returns", "save them at entry: uprobe:T:F "
                             "{ self->x = args.x; } and read self->x in the uretprobe")
        else:
            self.where(span, "args", frozenset({"uprobe"}), "uprobe probes")
        return False

    def arg_field(self, e: ast.FieldAccess) -> Ty:
        if not self.args_here(e.operand.span):
            return UNKNOWN
        sig = self.signature(e.operand.span, "args")
        if sig is None:
            return UNKNOWN
        param = next((p for p in sig.params if p.name == e.name), None)
        if param is None:
            names = [p.name for p in sig.params]
            listed = ", ".join(names) if names else "none"
            self.error(e.span, f"the function has no parameter '{e.name}'",
                       did_you_mean(e.name, names) or f"its parameters: {listed}")
            return UNKNOWN
        if param.index is None and param.location is None:
            self.error(e.span, f"'{e.name}' cannot be read here: {param.note}")
            return UNKNOWN
        ref = param.type
        in_memory = param.location is not None and param.location[0] == "breg"
        if in_memory and not ref.pointer and ref.name.startswith(("struct ", "union ")):
            # A struct variable at a line probe lives in memory: a struct value.
            if self.layouts.get(ref.name) is not None:
                return Ty("struct", ref)
        return self.value_ty(ref)

    def typed_retval(self, e: ast.Builtin) -> Ty:
        """`retval` as the function's return type, where a member access needs it."""
        ty = self.builtin(e)
        if "uretprobe" not in self.kinds or self.kinds - {"uretprobe"}:
            return ty
        sig = self.signature(e.span, "retval->")
        if sig is None or sig.ret is None:
            return ty
        return self.value_ty(sig.ret)

    def value_ty(self, ref: ast.TypeRef) -> Ty:
        """The kind of a value of C type `ref` held in a register."""
        if ref.pointer:
            return Ty("ptr", ref)
        return INT

    def kernel_only(self, span: ast.Span, name: str) -> None:
        hint = {"kstack": "use ustack", "ksym": "use usym", "kaddr": "use uaddr"}.get(name, "")
        self.error(span, f"'{name}' is about the kernel; uprobe traces user space only", hint)

    def where(self, span: ast.Span, name: str, allowed: frozenset[str], text: str,
              hint: str = "") -> None:
        bad = sorted(self.kinds - allowed)
        if bad:
            probes = " and ".join(k if k.isupper() else f"{k}" for k in bad)
            self.error(span, f"'{name}' can only be used in {text}",
                       hint or f"this clause has {probes} probes")

    def where_word(self, span: ast.Span, name: str, word: Word, hint: str = "") -> None:
        """A builtin or function used in a probe type its table row does not allow."""
        if word.allowed != ALL_KINDS:
            text = word.where_text or thread_kinds_text()
            self.where(span, name, word.allowed, text, hint)

    def positional(self, e: ast.Positional) -> Ty:
        if e.count:
            return INT
        params = self.options.params
        if params is None or e.index > len(params):
            return UNKNOWN
        return INT if _NUMERIC_PARAM.fullmatch(params[e.index - 1]) else STR

    def var_read(self, e: ast.Var) -> Ty:
        if e.name not in self.vars:
            self.error(e.span, f"undefined variable ${e.name}",
                       did_you_mean(f"${e.name}", (f"${v}" for v in self.vars)))
            return UNKNOWN
        return self.vars[e.name]

    def thread_local(self, e: ast.ThreadLocal) -> None:
        self.where(e.span, f"self->{e.name}", THREAD_KINDS, thread_kinds_text())

    def unary(self, e: ast.Unary) -> Ty:
        if e.op == "&":
            if not isinstance(e.operand, ast.FieldAccess | ast.Index):
                self.error(e.span, "'&' needs a struct member or an array element")
            self.expr(e.operand)
            return INT
        ty = self.expr(e.operand)
        if e.op == "*":
            if ty.kind == "ptr" and ty.ctype is not None:
                return self.pointee(ty.ctype)
            if ty.kind not in _INTLIKE:
                self.error(e.span, f"cannot dereference {describe(ty)}")
            return INT
        if ty.kind not in _INTLIKE:
            self.error(e.span, f"'{e.op}' needs an integer, not {describe(ty)}")
        return INT

    def incdec(self, e: ast.IncDec) -> Ty:
        match e.target:
            case ast.Var():
                self.var_read(e.target)
                return INT
            case ast.ThreadLocal():
                self.thread_local(e.target)
                self.thread_locals.setdefault(e.target.name, INT)
                return INT
            case ast.MapRef():
                self.map_write(e.target, "int", e.span, aggregation=False)
                return INT
        self.expr(e.target)
        self.error(e.span, f"'{e.op}' needs a $variable, an @map element or a self->variable")
        return INT

    def binary(self, e: ast.Binary) -> Ty:
        left, right = self.expr(e.left), self.expr(e.right)
        if e.op in ("==", "!="):
            if not compatible(left, right) or left.kind in ("tuple", "stack", "agg"):
                self.error(e.span, f"cannot compare {describe(left)} with {describe(right)}")
            return INT
        for side, ty in ((e.left, left), (e.right, right)):
            if ty.kind not in _INTLIKE:
                hint = "compare strings with == or strncmp()" if ty.kind == "str" else ""
                self.error(side.span, f"'{e.op}' needs integers, not {describe(ty)}", hint)
        return INT

    # ---------------------------------------------------------------- C types

    def type_ref(self, ref: ast.TypeRef, span: ast.Span) -> bool:
        """A named struct/union/enum must be defined, even behind a pointer."""
        base = ast.TypeRef(ref.name)
        if ref.name == "void" or self.layouts.size_align(base) is not None:
            return True
        hint = did_you_mean(ref.name, self.layouts.types) or (
            "define it in the script: struct Name { ... };"
        )
        if self.options.types is not None:
            self.error(span, f"unknown type '{ref.name}': not defined in the script nor in "
                             f"the debug info of {self.options.types.searched()}", hint)
        else:
            self.error(span, f"unknown type '{ref.name}'", hint)
        return False

    def offsetof(self, e: ast.Offsetof) -> int | None:
        """The byte offset of a member path, or None after reporting why not."""
        if not self.type_ref(e.type, e.span):
            return None
        aggregate = e.type.name
        offset = 0
        for name in e.members:
            if e.type.pointer or not aggregate.startswith(("struct ", "union ")):
                self.error(e.span, f"offsetof() needs a struct or union, not {aggregate}")
                return None
            member = self.layouts.member(aggregate, name)
            if member is None:
                layout = self.layouts.get(aggregate)
                names = [m.name for m in layout.members] if layout is not None else []
                self.error(e.span, f"{aggregate} has no member '{name}'",
                           did_you_mean(name, names))
                return None
            offset += member.offset
            aggregate = member.type.name if not member.type.pointer else ""
        return offset

    def cast(self, e: ast.Cast) -> Ty:
        ty = self.expr(e.operand)
        ref = e.type
        if not self.type_ref(ref, e.span):
            return UNKNOWN
        if ty.kind not in _INTLIKE:
            self.error(e.span, f"cannot cast {describe(ty)} to {ref.name}")
        if ref.pointer:
            return Ty("ptr", ref)
        if ref.name.startswith(("struct ", "union ")):
            self.error(e.span, f"cannot cast to a {ref.name.split()[0]} value",
                       f"cast to a pointer: ({ref.name} *)")
            return UNKNOWN
        if ref.name == "void":
            self.error(e.span, "cannot cast to void")
        return INT

    def member_ty(self, ref: ast.TypeRef, array_len: int | None) -> Ty:
        if array_len is not None:
            if ref.name == "char" and not ref.pointer:
                return STR
            return Ty("ptr", ast.TypeRef(ref.name, ref.pointer + 1))
        if ref.pointer:
            return Ty("ptr", ref)
        if ref.name.startswith(("struct ", "union ")):
            return Ty("struct", ref)
        return INT

    def pointee(self, ref: ast.TypeRef) -> Ty:
        inner = ast.TypeRef(ref.name, ref.pointer - 1)
        return self.member_ty(inner, None)

    def field_access(self, e: ast.FieldAccess) -> Ty:
        if isinstance(e.operand, ast.Builtin) and e.operand.name == "args":
            return self.arg_field(e)  # `args.x` and `args->x` alike, as bpftrace
        if isinstance(e.operand, ast.Builtin) and e.operand.name == "retval":
            ty = self.typed_retval(e.operand)
        else:
            ty = self.expr(e.operand)
        if ty.kind == "unknown":
            return UNKNOWN
        op = "->" if e.arrow else "."
        if e.arrow:
            ok = ty.kind == "ptr" and ty.ctype is not None and ty.ctype.pointer == 1
            aggregate = ty.ctype.name if ty.ctype is not None else ""
            if not ok and ty.kind == "struct":
                self.error(e.span, "'->' on a struct value", f"use '.{e.name}'")
                return UNKNOWN
        else:
            # `.` on a pointer to a struct dereferences it, as newer bpftrace does.
            ok = (ty.kind == "struct" or (ty.kind == "ptr" and ty.ctype is not None
                                          and ty.ctype.pointer == 1)) and ty.ctype is not None
            aggregate = ty.ctype.name if ty.ctype is not None else ""
        if not ok or not aggregate.startswith(("struct ", "union ")):
            self.error(e.span, f"'{op}' needs a {'pointer to a ' if e.arrow else ''}struct "
                               f"or union, not {describe(ty)}",
                       "cast first, e.g. ((struct Foo *)arg0)->field" if e.arrow else "")
            return UNKNOWN
        member = self.layouts.member(aggregate, e.name)
        if member is None:
            layout = self.layouts.get(aggregate)
            names = [m.name for m in layout.members] if layout is not None else []
            listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            self.error(e.span, f"{aggregate} has no member '{e.name}'",
                       did_you_mean(e.name, names) or (f"its members: {listed}" if names else ""))
            return UNKNOWN
        return self.member_ty(member.type, member.array_len)

    def index(self, e: ast.Index) -> Ty:
        ty = self.expr(e.operand)
        idx = self.expr(e.index)
        if idx.kind not in _INTLIKE:
            self.error(e.index.span, f"an index must be an integer, not {describe(idx)}")
        if ty.kind == "ptr" and ty.ctype is not None:
            return self.pointee(ty.ctype)
        if ty.kind not in ("int", "unknown", "str"):
            self.error(e.span, f"cannot index {describe(ty)}")
        return INT if ty.kind == "str" else UNKNOWN

    def tuple_index(self, e: ast.TupleIndex) -> Ty:
        ty = self.expr(e.operand)
        if ty.kind == "unknown":
            return UNKNOWN
        if ty.kind != "tuple":
            self.error(e.span, f".{e.index} needs a tuple, not {describe(ty)}")
            return UNKNOWN
        if e.index >= len(ty.items):
            self.error(e.span, f"tuple index {e.index} is out of range "
                               f"(the tuple has {len(ty.items)} items)")
            return UNKNOWN
        return ty.items[e.index]

    # ---------------------------------------------------------------- calls

    def call(self, call: ast.Call, *, statement: bool = False,
             aggregation_ok: bool = False) -> Ty:
        name = call.name
        info = FUNCTION_BY_NAME.get(name)
        if info is None:
            for arg in call.args:
                self.expr(arg)
            if name in KERNEL_NAMES:
                self.kernel_only(call.span, name)
            elif name in BUILTIN_BY_NAME or ARG_RE.fullmatch(name):
                self.error(call.span, f"'{name}' is a builtin, not a function",
                           f"write {name} without parentheses")
            else:
                self.error(call.span, f"unknown function '{name}'", did_you_mean(name, FUNCTION_BY_NAME))
            return UNKNOWN
        n = len(call.args)
        if n < info.min_args or (info.max_args >= 0 and n > info.max_args):
            self.error(call.span, f"{name}() takes {_arity(info.min_args, info.max_args)}, "
                                  f"got {n}")
        self.where_word(call.span, f"{name}()", info)
        if info.unsafe and not self.options.unsafe:
            self.error(call.span, f"{name}() needs --unsafe",
                       "it acts on the system; run with --unsafe if you mean it")
        if info.aggregation and not aggregation_ok:
            self.error(call.span, f"{name}() can only be assigned to a map",
                       f"write e.g. @x = {name}(...)")
        if info.result == "void" and not statement:
            self.error(call.span, f"{name}() returns no value")
        handler = getattr(self, f"call_{name}", None)
        if handler is not None:
            handler(call)
        else:
            self.table_args(call, info)
        return Ty(info.result) if not info.aggregation else Ty("agg")

    def table_args(self, call: ast.Call, info: Word) -> None:
        """The arguments as the table's argument kinds say (uplang.vocab.calls); a function
        with rules beyond its kinds has a `call_NAME` method instead."""
        for i, arg in enumerate(call.args):
            kind = info.arg_kind(i)
            if kind == "strlit":
                self.literal(call, i)
                continue
            ty = self.expr(arg)
            if kind == "int" and ty.kind not in _INTLIKE:
                here = "" if info.aggregation else " here"
                self.error(arg.span, f"{call.name}() needs an integer{here}, not {describe(ty)}")
            elif kind == "str" and ty.kind not in ("str", "unknown"):
                self.error(arg.span, f"{call.name}() needs a string, not {describe(ty)}",
                           "use str(ADDR) to read a C string" if ty.kind in _INTLIKE else "")

    def literal(self, call: ast.Call, i: int, what: str = "a string literal") -> ast.Str | None:
        if i >= len(call.args):
            return None
        arg = call.args[i]
        if not isinstance(arg, ast.Str):
            self.expr(arg)
            self.error(arg.span, f"argument {i + 1} of {call.name}() must be {what}")
            return None
        return arg

    def int_arg(self, call: ast.Call, arg: ast.Expr) -> None:
        ty = self.expr(arg)
        if ty.kind not in _INTLIKE:
            self.error(arg.span, f"{call.name}() needs an integer here, not {describe(ty)}")

    def int_args(self, call: ast.Call, start: int = 0) -> None:
        for arg in call.args[start:]:
            self.int_arg(call, arg)

    def const_args(self, call: ast.Call, start: int) -> list[int | None]:
        out = []
        for arg in call.args[start:]:
            value = const_int(arg)
            if value is None:
                self.expr(arg)
                self.error(arg.span, f"{call.name}() needs an integer literal here")
            out.append(value)
        return out

    def format_call(self, call: ast.Call) -> None:
        fmt = self.literal(call, 0)
        values = [self.expr(a) for a in call.args[1:]]
        if fmt is None:
            return
        try:
            convs = conversions(fmt.value)
        except FormatError as exc:
            self.error(fmt.span, f"{call.name}(): {exc}")
            return
        if len(convs) != len(values):
            self.error(call.span, f"{call.name}(): the format has {len(convs)} conversion"
                                  f"{'s' if len(convs) != 1 else ''} but {len(values)} "
                                  f"argument{'s' if len(values) != 1 else ''} follow")
            return
        for conv, ty, arg in zip(convs, values, call.args[1:], strict=True):
            if conv.conv in INT_CONVERSIONS and ty.kind not in _INTLIKE | {"usym"}:
                self.error(arg.span, f"{conv.text} needs an integer, not {describe(ty)}")
            elif conv.conv == "s" and ty.kind in ("int", "ptr"):
                self.error(arg.span, f"{conv.text} needs a string, not {describe(ty)}",
                           "use str(ADDR) to read a C string, or %d for a number")
            elif conv.conv.startswith("r") and ty.kind not in ("buf", "str", "unknown"):
                self.error(arg.span, f"{conv.text} needs a buffer, not {describe(ty)}",
                           "use buf(ADDR, LEN)")
            elif ty.kind in ("agg", "void"):
                self.error(arg.span, f"{describe(ty)} cannot be formatted")

    call_printf = call_system = call_cat = format_call

    def call_print(self, call: ast.Call) -> None:
        if not call.args:
            return
        first = call.args[0]
        if isinstance(first, ast.MapRef) and not first.keys:
            self.map_read(first, whole=True)
        elif len(call.args) > 1:
            self.expr(first)
            self.error(first.span, "print() with a limit needs a whole map, e.g. print(@m, 10)")
        else:
            ty = self.expr(first)
            if ty.kind == "void":
                self.error(first.span, "nothing to print: this expression has no value")
        self.int_args(call, 1)

    def whole_map(self, call: ast.Call) -> None:
        if not call.args:
            return
        first = call.args[0]
        if isinstance(first, ast.MapRef) and not first.keys:
            self.map_read(first, whole=True)
        else:
            self.expr(first)
            self.error(first.span, f"{call.name}() needs a map, e.g. {call.name}(@m)")

    call_clear = call_zero = call_len = whole_map

    def call_delete(self, call: ast.Call) -> None:
        if not call.args or not isinstance(call.args[0], ast.MapRef):
            self.int_args(call)
            self.error(call.span, "delete() needs a map element, e.g. delete(@m[key])")
            return
        ref = call.args[0]
        if len(call.args) > 1:
            if ref.keys:
                self.error(call.span, "delete(@m[key]) takes no further arguments")
            ref = ast.MapRef(ref.name, call.args[1:], span=ref.span)
        self.map_read(ref)

    def call_has_key(self, call: ast.Call) -> None:
        first = call.args[0] if call.args else None
        if not isinstance(first, ast.MapRef) or first.keys:
            for arg in call.args:
                self.expr(arg)
            self.error(call.span, "has_key() needs a map and a key, e.g. has_key(@m, pid)")
            return
        self.map_read(ast.MapRef(first.name, call.args[1:], span=first.span))

    def call_str(self, call: ast.Call) -> None:
        if call.args:
            ty = self.expr(call.args[0])
            if ty.kind not in _INTLIKE | {"str"}:
                self.error(call.args[0].span, f"str() needs an address, not {describe(ty)}")
        self.int_args(call, 1)

    def string_args(self, call: ast.Call, count: int) -> None:
        for arg in call.args[:count]:
            ty = self.expr(arg)
            if ty.kind not in ("str", "unknown"):
                self.error(arg.span, f"{call.name}() needs a string, not {describe(ty)}",
                           "use str(ADDR) to read a C string" if ty.kind in _INTLIKE else "")

    def call_strncmp(self, call: ast.Call) -> None:
        self.string_args(call, 2)
        limit = self.const_args(call, 2)
        if limit and limit[0] is not None and limit[0] < 0:
            self.error(call.args[2].span, "strncmp() length must not be negative")

    def call_uaddr(self, call: ast.Call) -> None:
        self.literal(call, 0, "a symbol name in quotes")

    def call_reg(self, call: ast.Call) -> None:
        arg = self.literal(call, 0, "a register name in quotes")
        if arg is not None and arg.value not in REGISTERS:
            self.error(arg.span, f"unknown register '{arg.value}'",
                       did_you_mean(arg.value, REGISTERS))

    def call_join(self, call: ast.Call) -> None:
        if call.args:
            self.int_arg(call, call.args[0])
        if len(call.args) > 1:
            self.literal(call, 1)

    def call_exit(self, call: ast.Call) -> None:
        self.int_args(call)
        value = const_int(call.args[0]) if call.args else None
        if value is not None and not 0 <= value <= 255:
            self.error(call.args[0].span, f"exit code {value} is out of range (0-255)")

    def call_sleep(self, call: ast.Call) -> None:
        self.int_args(call)
        value = const_int(call.args[0]) if call.args else None
        if value is not None and value < 0:
            self.error(call.args[0].span, "sleep() needs a duration in ms, not negative")

    def call_signal(self, call: ast.Call) -> None:
        if not call.args:
            return
        arg = call.args[0]
        if isinstance(arg, ast.Str):
            if arg.value not in SIGNALS:
                self.error(arg.span, f"unknown signal '{arg.value}'",
                           did_you_mean(arg.value, SIGNALS))
            return
        value = const_int(arg)
        if value is not None and not 1 <= value <= 64:
            self.error(arg.span, f"signal number {value} is out of range (1-64)")
        elif value is None:
            self.int_args(call)

    def call_ustack(self, call: ast.Call) -> None:
        args = list(call.args)
        if args and isinstance(args[0], ast.Builtin) and args[0].name in USTACK_MODES:
            args.pop(0)
        elif args and isinstance(args[0], ast.Builtin) and not ARG_RE.fullmatch(args[0].name) \
                and args[0].name not in BUILTIN_BY_NAME:
            self.error(args[0].span, f"unknown stack mode '{args[0].name}'",
                       did_you_mean(args[0].name, USTACK_MODES) or "modes: bpftrace, perf, raw")
            args.pop(0)
        for arg in args:
            value = const_int(arg)
            if value is None or value <= 0:
                self.expr(arg)
                self.error(arg.span, "ustack() limit must be a positive integer literal")

    def call_hist(self, call: ast.Call) -> None:
        if call.args:
            self.int_arg(call, call.args[0])
        if len(call.args) > 1:
            bits = self.const_args(call, 1)[0]
            if bits is not None and not 0 <= bits <= 5:
                self.error(call.args[1].span, "hist() bits must be between 0 and 5")

    def call_lhist(self, call: ast.Call) -> None:
        if call.args:
            self.int_arg(call, call.args[0])
        if len(call.args) != 4:
            return
        lo, hi, step = self.const_args(call, 1)
        if lo is None or hi is None or step is None:
            return
        if step <= 0:
            self.error(call.args[3].span, "lhist() step must be positive")
        if hi <= lo:
            self.error(call.args[2].span, "lhist() max must be greater than min")

def _keys(n: int) -> str:
    return "no key" if n == 0 else f"{n} key" + ("s" if n != 1 else "")


def _arity(lo: int, hi: int) -> str:
    if hi < 0:
        return f"at least {lo} argument{'s' if lo != 1 else ''}"
    if lo == hi:
        return "no arguments" if lo == 0 else f"{lo} argument{'s' if lo != 1 else ''}"
    return f"{lo} to {hi} arguments"
