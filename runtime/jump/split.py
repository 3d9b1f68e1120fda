"""Which clauses run inside the target, and the split of each into two parts.

A clause runs in the target when its predicate and every statement are integer work over
registers, arguments, retval, pid, tid, nsecs, constants, `$` variables, `self->`
variables and integer-keyed maps; or effects (printf, print, time, system, cat, exit,
string-keyed map updates, ...) whose inputs are such integers or bounded `str()` copies.
The integer work becomes the in-target part; each effect statement becomes an event: the
target evaluates its inputs (the captures) into a ring record, and the tracer runs the
statement from the record with the trap path's own handler code. Anything else keeps the
clause on the trap path, with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from uplang import ast
from uplang.plan import MapDecl, Plan, PlanClause
from uplang.vocab.ctypes import BASIC_TYPES

TARGET_KINDS = ("uprobe", "uretprobe")
SHM_MAP_KINDS = frozenset({"count", "sum", "min", "max", "avg", "stats", "hist", "lhist", "int"})
INT_KEY_KINDS = frozenset({"int", "integer", "ptr", "pointer", "bool", "uaddr"})
COMM = "comm"  # a key position that always holds `comm`: two words in the target
INT_BUILTINS = frozenset({"pid", "tid", "nsecs", "elapsed", "retval"})
# Effects the user side runs from a record; their integer/string inputs are captured.
EFFECTS = frozenset({"printf", "print", "time", "system", "cat", "exit"})
# Integer casts by the plan's type names (the parser has mapped every C spelling onto one).
CAST_TYPES = {t.name: (t.size, t.signed) for t in BASIC_TYPES if t.integer}
CAPTURE_PREFIX = "__jc"


class Refuse(Exception):
    """The clause keeps the trap path; the message is the reason shown by `-v`."""


@dataclass(frozen=True)
class Capture:
    """One input of an event, evaluated in the target: an integer, or str(addr[, n])."""

    kind: str  # 'int', 'str' / 'buf' (bounded copies from an address), 'comm' (thread name)
    expr: ast.Expr
    size: int = 8  # bytes in the record (str: the bound)


@dataclass(frozen=True)
class Event:
    """An effect statement run on the user side from a record."""

    stmt: ast.Stmt  # rewritten: captured expressions became Var(CAPTURE_PREFIX + i)
    captures: tuple[Capture, ...]


@dataclass(frozen=True)
class Branch:
    """An `if` whose branches hold events: the target evaluates the condition and writes
    only the events of the branch taken."""

    cond: ast.Expr
    then: tuple[Step, ...]
    orelse: tuple[Step, ...]


Step = ast.Stmt | Event | Branch


@dataclass(frozen=True)
class ClauseSplit:
    """index: the plan clause; kind: 'entry' or 'return'; reason: None when in-target.
    steps: in order, ast statements (in-target work), Events and Branches."""

    index: int
    kind: str
    reason: str | None
    predicate: ast.Expr | None = None
    steps: tuple[Step, ...] = ()


@dataclass
class _Facts:
    maps: dict[str, MapDecl]
    params: tuple[str, ...]
    max_strlen: int
    var_types: dict[str, str] = field(default_factory=dict)


def shm_map_reason(decl: MapDecl | None, name: str) -> str | None:
    """Why map @name cannot live in the shared area (None: it can)."""
    if decl is None:
        return f"@{name} has no inferred type"
    if decl.value_kind not in SHM_MAP_KINDS:
        return f"@{name} holds {decl.value_kind} values"
    if any(k not in INT_KEY_KINDS and k != COMM for k in decl.key_kinds):
        return f"@{name} has non-integer keys"
    return None


def map_decls(plan: Plan) -> dict[str, MapDecl]:
    """The plan's maps, a string key position that every use of the map fills with
    `comm` marked COMM: such a map (`@[comm] = count()`) lives in the shared area, its
    thread names kept as two words."""
    decls = {m.name: m for m in plan.maps}
    uses: dict[str, list[tuple[ast.Expr, ...]]] = {}
    nodes = tuple(n for c in plan.clauses for n in ((c.predicate,) if c.predicate else ())
                  + c.body)
    for n in _walk(nodes):
        if isinstance(n, ast.Assign) and isinstance(n.target, ast.MapRef):
            uses.setdefault(n.target.name, []).append(n.target.keys)
        elif isinstance(n, ast.MapRef):
            uses.setdefault(n.name, []).append(n.keys)
    out = dict(decls)
    for name, d in decls.items():
        kinds = list(d.key_kinds)
        for i, k in enumerate(kinds):
            if k == "str" and uses.get(name) and all(
                    len(keys) == len(kinds) and _is_comm(keys[i]) for keys in uses[name]):
                kinds[i] = COMM
        if kinds != list(d.key_kinds):
            out[name] = dataclasses.replace(d, key_kinds=tuple(kinds))
    return out


def _is_comm(e: ast.Expr) -> bool:
    return isinstance(e, ast.Builtin) and e.name == "comm"


def _keys(ref: ast.MapRef, facts: _Facts, kind: str) -> None:
    """Refuse unless every key of the map reference can be computed in the target."""
    decl = facts.maps.get(ref.name)
    for i, k in enumerate(ref.keys):
        if decl is not None and i < len(decl.key_kinds) and decl.key_kinds[i] == COMM:
            continue  # map_decls saw `comm` here
        _int_expr(k, facts, kind)


def split_plan(plan: Plan, max_strlen: int = 64) -> dict[int, ClauseSplit]:
    """Every probe clause's split, by clause index. Maps read in the target must not be
    written anywhere else; clauses that would read such a map keep the trap path too
    (repeated until nothing changes)."""
    facts_maps = map_decls(plan)
    kinds = {p.id: p.kind for p in plan.probes}
    out: dict[int, ClauseSplit] = {}
    for clause in plan.clauses:
        ck = {kinds.get(i, "") for i in clause.probes}
        if not ck & {"uprobe", "uretprobe", "usdt"}:
            continue
        out[clause.index] = _split_clause(clause, ck, plan, facts_maps, max_strlen)
    return settle(plan, out)


MERGED_BEFORE = frozenset({"begin", "end", "interval"})  # the drivers merge before these run


def settle(plan: Plan, splits: dict[int, ClauseSplit],
           mixed: frozenset[int] = frozenset()) -> dict[int, ClauseSplit]:
    """Demotes in-target clauses whose maps would disagree between the two sides, until
    nothing changes. `mixed`: in-target clauses that also run on the trap path at some of
    their sites (their whole body then also writes and reads the MapStore)."""
    kinds = {p.id: p.kind for p in plan.probes}
    out = dict(splits)
    while True:
        user_written: set[str] = set()
        user_reset: set[str] = set()
        trap_read: set[str] = set()
        for clause in plan.clauses:
            s = out.get(clause.index)
            on_trap = s is None or s.reason is not None or clause.index in mixed
            if on_trap:
                stmts: tuple = clause.body
                if not {kinds.get(i, "") for i in clause.probes} <= MERGED_BEFORE:
                    trap_read |= _maps_read(clause)
            else:
                assert s is not None
                stmts = tuple(ev.stmt for ev in events_of(s.steps))
            user_written |= _maps_written(stmts)
            user_reset |= _maps_written(stmts, resets_only=True)
        changed = False
        for idx, s in list(out.items()):
            if s.reason is not None:
                continue
            bad = sorted(_maps_read_in_target(s) & user_written)
            reason = f"reads @{bad[0]} in the target, which is also written on the user side" \
                if bad else None
            # The merge adds what changed since the last look; a min or max cannot be
            # taken back, so one that the user side resets must stay on one side.
            extremes = sorted(_extremes_in_target(s) & user_reset)
            if extremes and reason is None:
                reason = f"@{extremes[0]} (min/max) is cleared on the user side"
            # A trap-path hit reads the MapStore at once; it must not miss target updates.
            seen = sorted(_maps_updated_in_target(s) & trap_read)
            if seen and reason is None:
                reason = f"@{seen[0]} is also read by a clause on the trap path"
            if reason is not None:
                out[idx] = ClauseSplit(idx, s.kind, reason)
                changed = True
        if not changed:
            return out


def _split_clause(clause: PlanClause, probe_kinds: set[str], plan: Plan, maps: dict[str, MapDecl],
                  max_strlen: int) -> ClauseSplit:
    kind = "return" if probe_kinds == {"uretprobe"} else "entry"
    if not probe_kinds <= set(TARGET_KINDS):
        other = sorted(probe_kinds - set(TARGET_KINDS))[0]
        return ClauseSplit(clause.index, kind, f"{other} probes keep the trap path")
    if clause.sync:
        return ClauseSplit(clause.index, kind, "sync clause needs a stopped thread")
    facts = _Facts(maps, plan.params, max_strlen)
    try:
        if clause.predicate is not None:
            _int_expr(clause.predicate, facts, kind)
        steps = _steps(clause.body, facts, kind)
    except Refuse as exc:
        return ClauseSplit(clause.index, kind, str(exc))
    return ClauseSplit(clause.index, kind, None, clause.predicate, tuple(steps))


def _steps(body: tuple[ast.Stmt, ...], facts: _Facts, kind: str) -> list[Step]:
    out: list[Step] = []
    for s in body:
        if isinstance(s, ast.Block):
            out.extend(_steps(s.body, facts, kind))
            continue
        if isinstance(s, ast.If):
            _int_expr(s.cond, facts, kind)
            then, orelse = _steps(s.then, facts, kind), _steps(s.orelse, facts, kind)
            if any(not isinstance(x, ast.Stmt) for x in then + orelse):
                out.append(Branch(s.cond, tuple(then), tuple(orelse)))
            else:
                out.append(s)  # integer work only: the statement as it is
            continue
        if _is_target_stmt(s, facts, kind):
            out.append(s)
            continue
        out.append(_event(s, facts, kind))
    return out


def events_of(steps: tuple[Step, ...] | list[Step]) -> list[Event]:
    """Every event under these steps, in program order."""
    out: list[Event] = []
    for step in steps:
        if isinstance(step, Event):
            out.append(step)
        elif isinstance(step, Branch):
            out.extend(events_of(step.then))
            out.extend(events_of(step.orelse))
    return out


def _is_target_stmt(s: ast.Stmt, facts: _Facts, kind: str) -> bool:
    """True for integer work the target does itself; False for an effect statement; Refuse
    for anything that can be neither."""
    if isinstance(s, ast.Assign):
        t = s.target
        if isinstance(t, ast.MapRef):
            if shm_map_reason(facts.maps.get(t.name), t.name) is not None:
                return False
            _keys(t, facts, kind)
            v = s.value
            if isinstance(v, ast.Call) and v.name in ("count", "sum", "min", "max", "avg",
                                                    "stats", "hist", "lhist"):
                if s.op != "=":
                    raise Refuse(f"{s.op} on an aggregation")
                for a in v.args[:1]:
                    _int_expr(a, facts, kind)
                for a in v.args[1:]:
                    if not isinstance(a, ast.Int):
                        raise Refuse(f"{v.name}() with a non-constant argument")
                return True
            if s.op not in ("=", "+=", "-="):
                raise Refuse(f"{s.op} on a map element (only =, +=, -= run in the target)")
            _int_expr(v, facts, kind)
            return True
        if isinstance(t, ast.Var):
            _int_expr(s.value, facts, kind)
            facts.var_types.setdefault(t.name, "int")
            return True
        if isinstance(t, ast.ThreadLocal):
            _int_expr(s.value, facts, kind)
            return True
        raise Refuse("assignment to a field or memory")
    if isinstance(s, ast.ExprStmt):
        e = s.expr
        if isinstance(e, ast.IncDec):
            _int_expr(e, facts, kind)
            return True
        if isinstance(e, ast.Call) and e.name == "delete":
            ref = e.args[0] if e.args else None
            if isinstance(ref, ast.MapRef) and len(e.args) == 1:
                decl = facts.maps.get(ref.name)
                if decl is not None and shm_map_reason(decl, ref.name) is None \
                        and decl.value_kind == "int":
                    _keys(ref, facts, kind)
                    return True
            raise Refuse("delete() of an aggregation or non-integer map")
        if isinstance(e, ast.Call) and e.name in EFFECTS:
            return False
        if isinstance(e, ast.Call):
            raise Refuse(f"handler calls {e.name}()")
        _int_expr(e, facts, kind)
        return True
    raise Refuse(f"{type(s).__name__.lower()} statement")


def _int_expr(e: ast.Expr, facts: _Facts, kind: str) -> None:
    """Refuse unless e is an integer expression the target can evaluate."""
    if isinstance(e, ast.Int):
        return
    if isinstance(e, ast.Builtin):
        n = e.name
        if n in INT_BUILTINS:
            if n == "retval" and kind != "return":
                raise Refuse("retval outside a return probe")
            return
        if n.startswith("arg") and n[3:].isdigit():
            if kind == "return":
                raise Refuse("arguments in a return probe")
            return
        raise Refuse(f"handler uses {n}")
    if isinstance(e, ast.Positional):
        if e.count or e.index > len(facts.params):
            return
        try:
            int(facts.params[e.index - 1], 0)
        except ValueError:
            raise Refuse(f"${e.index} is a string") from None
        return
    if isinstance(e, ast.Var):
        if facts.var_types.get(e.name, "int") != "int":
            raise Refuse(f"${e.name} is not an integer")
        return
    if isinstance(e, ast.ThreadLocal):
        return
    if isinstance(e, ast.MapRef):
        decl = facts.maps.get(e.name)
        why = shm_map_reason(decl, e.name)
        if why is not None or decl is None:
            raise Refuse(f"reads @{e.name}: {why}")
        if decl.value_kind not in ("int", "count", "sum", "min", "max"):
            raise Refuse(f"reads the {decl.value_kind}() map @{e.name} as a value")
        _keys(e, facts, kind)
        return
    if isinstance(e, ast.Unary):
        if e.op in ("*", "&"):
            raise Refuse("dereferences memory")
        _int_expr(e.operand, facts, kind)
        return
    if isinstance(e, ast.IncDec):
        t = e.target
        if isinstance(t, ast.MapRef):
            decl = facts.maps.get(t.name)
            if decl is None or shm_map_reason(decl, t.name) is not None \
                    or decl.value_kind != "int":
                raise Refuse(f"{e.op} on @{t.name}")
            _keys(t, facts, kind)
            return
        if isinstance(t, ast.Var | ast.ThreadLocal):
            return
        raise Refuse(f"{e.op} on memory")
    if isinstance(e, ast.Binary):
        if e.op not in ("+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "==", "!=",
                        "<", ">", "<=", ">=", "&&", "||"):
            raise Refuse(f"operator {e.op}")
        if _is_str(e.left, facts) or _is_str(e.right, facts):
            raise Refuse("string comparison")
        if e.op == ">>" and _has_unsigned(e.left):
            raise Refuse(">> of an unsigned value")  # logical on the trap path
        _int_expr(e.left, facts, kind)
        _int_expr(e.right, facts, kind)
        return
    if isinstance(e, ast.Ternary):
        for x in (e.cond, e.then, e.orelse):
            _int_expr(x, facts, kind)
        return
    if isinstance(e, ast.Cast):
        if e.type.name not in CAST_TYPES or e.type.pointer or e.type.name == "uint64":
            raise Refuse(f"cast to {e.type.name}")
        _int_expr(e.operand, facts, kind)
        return
    if isinstance(e, ast.Call):
        raise Refuse(f"handler calls {e.name}()")
    raise Refuse(f"handler uses {type(e).__name__.lower()} expressions")


def _has_unsigned(e: ast.Expr) -> bool:
    """True when an unsigned type takes part (the trap path then shifts logically)."""
    return any(isinstance(n, ast.Cast) and not CAST_TYPES.get(n.type.name, (0, True))[1]
               for n in _walk((e,)))


def _is_str(e: ast.Expr, facts: _Facts) -> bool:
    if isinstance(e, ast.Str):
        return True
    if isinstance(e, ast.Call) and e.name in ("str", "buf"):
        return True
    if isinstance(e, ast.Builtin) and e.name in ("comm", "func", "probe"):
        return True
    return False


def _event(s: ast.Stmt, facts: _Facts, kind: str) -> Event:
    """The statement with every maximal target-evaluable input replaced by a capture."""
    caps: list[Capture] = []

    def cap(e: ast.Expr) -> ast.Expr:
        if isinstance(e, ast.Int | ast.Str):
            return e
        if isinstance(e, ast.Call) and e.name == "str":
            if _is_str(e.args[0], facts):
                raise Refuse("str() of a string")
            _int_expr(e.args[0], facts, kind)
            n = facts.max_strlen
            if len(e.args) > 1:
                if not isinstance(e.args[1], ast.Int):
                    raise Refuse("str() with a non-constant length")
                n = max(0, min(e.args[1].value, facts.max_strlen))
            caps.append(Capture("str", e.args[0], n))
            return ast.Var(f"{CAPTURE_PREFIX}{len(caps) - 1}")
        if isinstance(e, ast.Call) and e.name == "buf":
            if len(e.args) != 2 or not isinstance(e.args[1], ast.Int):
                raise Refuse("buf() without a constant length")
            _int_expr(e.args[0], facts, kind)
            caps.append(Capture("buf", e.args[0], max(0, min(e.args[1].value,
                                                             facts.max_strlen))))
            return ast.Var(f"{CAPTURE_PREFIX}{len(caps) - 1}")
        try:
            _int_expr(e, facts, kind)
        except Refuse:
            pass
        else:
            if isinstance(e, ast.IncDec):
                raise Refuse(f"{e.op} inside an effect")
            caps.append(Capture("int", e))
            return ast.Var(f"{CAPTURE_PREFIX}{len(caps) - 1}")
        if isinstance(e, ast.Builtin) and e.name == "comm":
            # The thread's name at the hit (prctl PR_GET_NAME in the target): the user
            # side runs later, when the thread may have renamed itself or gone.
            caps.append(Capture("comm", e, 16))
            return ast.Var(f"{CAPTURE_PREFIX}{len(caps) - 1}")
        if isinstance(e, ast.Builtin):
            raise Refuse(f"handler uses {e.name}")
        if isinstance(e, ast.MapRef):
            return dataclasses.replace(e, keys=tuple(cap(k) for k in e.keys))
        if isinstance(e, ast.Call):
            if e.name in ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist",
                          "print", "printf", "time", "system", "cat", "exit"):
                return dataclasses.replace(e, args=tuple(cap(a) for a in e.args))
            raise Refuse(f"handler calls {e.name}()")
        if isinstance(e, ast.Tuple):
            return dataclasses.replace(e, items=tuple(cap(i) for i in e.items))
        raise Refuse(f"{type(e).__name__.lower()} in an effect")

    if isinstance(s, ast.ExprStmt) and isinstance(s.expr, ast.Call):
        call = s.expr
        if call.name == "print" and call.args and isinstance(call.args[0], ast.MapRef) \
                and not call.args[0].keys:
            name = call.args[0].name
            if shm_map_reason(facts.maps.get(name), name) is None:
                # The trap path prints the map as it was at the hit; a drained event
                # would print it as it is later.
                raise Refuse(f"print(@{name}) at a hit needs the map as it was then")
            rest = tuple(cap(a) for a in call.args[1:])
            new: ast.Stmt = dataclasses.replace(
                s, expr=dataclasses.replace(call, args=(call.args[0],) + rest))
        else:
            new = dataclasses.replace(s, expr=cap(call))
    elif isinstance(s, ast.Assign) and isinstance(s.target, ast.MapRef):
        new = dataclasses.replace(s, target=cap(s.target), value=cap(s.value))
    else:
        raise Refuse(f"{type(s).__name__.lower()} statement")
    return Event(new, tuple(caps))


def _maps_written(body: tuple[ast.Stmt, ...], resets_only: bool = False) -> set[str]:
    """Maps the statements write (or, with resets_only, delete/clear/zero)."""
    out: set[str] = set()
    for node in _walk(body):
        if resets_only:
            pass
        elif isinstance(node, ast.Assign) and isinstance(node.target, ast.MapRef):
            out.add(node.target.name)
            continue
        elif isinstance(node, ast.IncDec) and isinstance(node.target, ast.MapRef):
            out.add(node.target.name)
            continue
        if isinstance(node, ast.Call) and node.name in ("delete", "clear", "zero"):
            for a in node.args[:1]:
                if isinstance(a, ast.MapRef):
                    out.add(a.name)
    return out


def target_nodes(s: ClauseSplit) -> list[object]:
    """Every AST node the in-target part evaluates (predicate, statements, captures)."""
    nodes: list[object] = [s.predicate] if s.predicate is not None else []

    def add(steps: tuple[Step, ...]) -> None:
        for step in steps:
            if isinstance(step, Event):
                nodes.extend(c.expr for c in step.captures)
            elif isinstance(step, Branch):
                nodes.append(step.cond)
                add(step.then)
                add(step.orelse)
            else:
                nodes.append(step)

    add(s.steps)
    return _walk(tuple(nodes))


def _maps_updated_in_target(s: ClauseSplit) -> set[str]:
    out: set[str] = set()
    for n in target_nodes(s):
        if isinstance(n, ast.Assign) and isinstance(n.target, ast.MapRef):
            out.add(n.target.name)
        elif isinstance(n, ast.IncDec) and isinstance(n.target, ast.MapRef):
            out.add(n.target.name)
        elif isinstance(n, ast.Call) and n.name == "delete" and n.args and \
                isinstance(n.args[0], ast.MapRef):
            out.add(n.args[0].name)
    return out


def _maps_read(clause: PlanClause) -> set[str]:
    """Maps a clause's predicate or body reads (print(@m), @m[k], len(@m), ...)."""
    nodes: tuple = ((clause.predicate,) if clause.predicate is not None else ()) + clause.body
    out: set[str] = set()
    for n in _walk(nodes):
        if isinstance(n, ast.Assign) and isinstance(n.target, ast.MapRef):
            if n.op != "=":
                out.add(n.target.name)
            continue
        if isinstance(n, ast.MapRef):
            out.add(n.name)
    return out


def _extremes_in_target(s: ClauseSplit) -> set[str]:
    """Maps the in-target part updates with min() or max()."""
    return {n.target.name for n in target_nodes(s)
            if isinstance(n, ast.Assign) and isinstance(n.target, ast.MapRef)
            and isinstance(n.value, ast.Call) and n.value.name in ("min", "max")}


def _maps_read_in_target(s: ClauseSplit) -> set[str]:
    """Maps whose values in-target code reads (a read of a map written elsewhere would see
    only the shared area's part of it)."""
    out: set[str] = set()
    for node in target_nodes(s):
        if isinstance(node, ast.Assign) and isinstance(node.target, ast.MapRef):
            if node.op != "=":  # += reads the element it writes
                out.add(node.target.name)
            continue  # the target of a plain assignment is not read (its keys are walked)
        if isinstance(node, ast.MapRef):
            out.add(node.name)
        if isinstance(node, ast.IncDec) and isinstance(node.target, ast.MapRef):
            out.add(node.target.name)
    return out


def _walk(nodes: tuple) -> list[object]:
    """Every AST node under nodes (statements and expressions), pre-order."""
    out: list[object] = []
    stack: list[object] = list(reversed(nodes))
    while stack:
        n = stack.pop()
        if n is None or not dataclasses.is_dataclass(n):
            continue
        out.append(n)
        if isinstance(n, ast.Assign) and isinstance(n.target, ast.MapRef):
            kids: list[object] = [*n.target.keys, n.value]
        else:
            kids = []
            for f in dataclasses.fields(n):
                v = getattr(n, f.name)
                if isinstance(v, tuple):
                    kids.extend(v)
                elif dataclasses.is_dataclass(v) and not isinstance(v, ast.Span):
                    kids.append(v)
        stack.extend(reversed(kids))
    return out
