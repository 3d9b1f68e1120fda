"""Compiling a whole plan's clauses into handler functions, once per session.

All clauses are generated into one Python module and exec'd together, with the support
object's helpers, the map objects and the parsed printf formats bound as its globals.
Generation runs once: the types of `self->` variables and map values, which one clause may
assign and another read (entry/return pairs), come from the plan (`Plan.thread_locals`,
`MapDecl.value_type`: what the checks inferred); the compiler types each expression as it
generates it, from those and from the C layouts.

A `while` loop stops after `max_loop_iterations` iterations (config; default 1000, the
runtime's choice) with an error event, so that no handler can hang the traced thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runtime.handlers.codegen import ClauseGen, CompileError, Shared, map_global
from runtime.handlers.contexts import Handler
from runtime.handlers.support import HandlerSupport
from uplang.plan import Plan

DEFAULT_MAX_LOOP = 1000


@dataclass(frozen=True)
class CompiledClause:
    """One clause's handler: `handler(ctx)` evaluates predicate and body at the hit."""

    index: int
    handler: Handler
    source: str


def plan_kind(plan: Plan, clause_index: int) -> str:
    clause = plan.clauses[clause_index]
    by_id = {p.id: p for p in plan.probes}
    kinds = {by_id[i].kind for i in clause.probes if i in by_id}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def bind_namespace(shared: Shared, support: HandlerSupport,
                   compile_format: Callable[[str], object]) -> dict[str, object]:
    """Globals of generated handler code: the support's helpers, the constants the
    generator bound (printf formats parsed once here) and the map objects."""
    namespace: dict[str, object] = dict(support.namespace())
    for name, value in shared.consts.items():
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "printf":
            namespace[name] = compile_format(str(value[1]))
        else:
            namespace[name] = value
    for name in shared.map_names:
        namespace[map_global(name)] = support.maps.map(name)
    return namespace


def compile_plan(plan: Plan, support: HandlerSupport,
                 compile_format: Callable[[str], object]) -> dict[int, CompiledClause]:
    """Handlers by clause index. compile_format turns a printf format into the object the
    emitter formats with (parsed once here, not per hit)."""
    max_loop = int(plan.config.get("max_loop_iterations", DEFAULT_MAX_LOOP) or DEFAULT_MAX_LOOP)
    shared = Shared.of(plan, max_loop=max_loop,
                       max_ustack=int(plan.config.get("max_ustack", 127) or 127))
    sources: dict[int, str] = {}
    for clause in plan.clauses:
        gen = ClauseGen(shared, plan_kind(plan, clause.index), args=clause.args, ret=clause.ret)
        sources[clause.index] = gen.function(f"clause_{clause.index}", clause.predicate,
                                             clause.body)
    namespace = bind_namespace(shared, support, compile_format)
    module = "\n".join(sources.values())
    try:
        code = compile(module, "<uprobe handlers>", "exec")
    except SyntaxError as exc:  # a generator bug, never the user's script
        raise CompileError(f"internal: generated handler does not compile: {exc}") from exc
    exec(code, namespace)  # noqa: S102 - our own generated source
    return {
        i: CompiledClause(i, namespace[f"clause_{i}"], src)  # type: ignore[arg-type]
        for i, src in sources.items()
    }
