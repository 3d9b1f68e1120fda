"""AST + check results -> uplang.plan.Plan: the only thing the runtime receives.

The planner only rearranges what the checks established: probe specs become PlanProbes with
one id each, enum constants become integers, and the maps and layouts the checks inferred
are attached. It never fails on a checked program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from uplang import ast
from uplang.astwalk import rewrite, walk
from uplang.checks import CheckOptions, CheckResult, check
from uplang.parser import parse
from uplang.plan import Config, Plan, PlanClause, PlanProbe
from uplang.probes import TIME_UNITS
from uplang.typeenv import TypeSource
from uplang.vocab import calls
from uplang.vocab.probetypes import BY_NAME

NSECS_PER_SEC = 1_000_000_000


def compile_script(text: str, filename: str = "<input>",
                   options: CheckOptions | None = None,
                   types_for: Callable[[ast.Program], TypeSource] | None = None) -> Plan:
    """parse -> check -> plan, the whole front end; raises UplangError subclasses.
    `types_for` gives the program's own types (DWARF) for a parsed program."""
    options = options or CheckOptions()
    program = parse(text, filename)
    if types_for is not None:
        options = dataclasses.replace(options, types=types_for(program))
    result = check(program, options, text)
    return build_plan(program, result, params=options.params or (), unsafe=options.unsafe)


def build_plan(program: ast.Program, result: CheckResult, *,
               params: tuple[str, ...] = (), unsafe: bool = False) -> Plan:
    enums = {
        ident: value
        for t in program.types if t.kind == "enum"
        for ident, value in t.enumerators
    }
    probes: list[PlanProbe] = []
    clauses: list[PlanClause] = []
    for index, clause in enumerate(program.clauses):
        ids = []
        for spec in clause.probes:
            probe = plan_probe(len(probes), index, spec)
            probes.append(probe)
            ids.append(probe.id)
        predicate = _fold_enums(clause.predicate, enums) if clause.predicate else None
        body = tuple(_fold_enums(s, enums) for s in clause.body)
        sig = result.signatures.get(index)
        clauses.append(PlanClause(index, tuple(ids), predicate, body, clause.sync,
                                  reads_registers(predicate, body),
                                  args=sig.params if sig else None,
                                  ret=sig.ret if sig else None))
    return Plan(
        probes=tuple(probes),
        clauses=tuple(clauses),
        maps=result.maps,
        types=tuple(result.layouts.types.values()),
        config=Config(tuple((i.name, _config_value(i.value)) for i in program.config)),
        params=tuple(params),
        unsafe=unsafe,
        thread_locals=tuple(sorted(result.thread_locals.items())),
    )


def plan_probe(pid: int, clause: int, spec: ast.ProbeSpec) -> PlanProbe:
    kind = BY_NAME[spec.provider].plan_kind
    period = 0
    if BY_NAME[spec.provider].resolution == "timer" and spec.value > 0:
        unit = TIME_UNITS[spec.unit]
        period = NSECS_PER_SEC // spec.value if spec.unit == "hz" else unit * spec.value
    return PlanProbe(
        id=pid,
        clause=clause,
        kind=kind,
        spec=spec.raw or kind,
        target=spec.target,
        func=spec.func,
        offset=spec.offset or 0,
        address=spec.address,
        usdt_provider=spec.usdt_provider,
        usdt_name=spec.usdt_name,
        period_ns=period,
        offcpu=spec.provider == "wallclock",
    )


def reads_registers(predicate: ast.Expr | None, body: tuple[ast.Stmt, ...]) -> bool:
    """Whether a clause's handler may read registers: any builtin or function whose table
    row says so (or that the table does not know)."""
    roots = ([predicate] if predicate is not None else []) + list(body)
    for root in roots:
        for node in walk(root):
            if isinstance(node, ast.Builtin) and calls.reads_registers(node.name, False):
                return True
            if isinstance(node, ast.Call) and calls.reads_registers(node.name, True):
                return True
    return False


def _config_value(value: int | str) -> int | str:
    # Booleans become integers so that the runtime tests one spelling.
    return {"true": 1, "false": 0}.get(value, value) if isinstance(value, str) else value


def _fold_enums(node: Any, enums: dict[str, int]) -> Any:
    """Enum constants are compile-time integers: the runtime never sees their names."""
    if not enums:
        return node

    def fold(n: Any) -> Any:
        if isinstance(n, ast.Builtin) and n.name in enums:
            return ast.Int(enums[n.name], span=n.span)
        return n

    return rewrite(node, fold)
