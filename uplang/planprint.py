"""A deterministic, human-readable printout of a Plan, for `--dry-run` (like `bpftrace -d`).

Same plan, same text: nothing here depends on dict order, ids are the plan's own, and handler
bodies are printed with uplang.unparse so they read as the script did.
"""

from __future__ import annotations

from uplang import unparse
from uplang.plan import Plan, PlanProbe, TypeLayout

INDENT = "    "


def probe_line(p: PlanProbe) -> str:
    fields: list[str] = []
    if p.kind in ("uprobe", "uretprobe"):
        fields.append(f"target={p.target or '(process)'}")
        if p.address is not None:
            fields.append(f"address={p.address:#x}")
        else:
            fields.append(f"func={p.func}")
            if p.offset:
                fields.append(f"offset={p.offset:#x}")
    elif p.kind == "usdt":
        fields.append(f"target={p.target or '(process)'}")
        fields.append(f"provider={p.usdt_provider or '*'}")
        fields.append(f"name={p.usdt_name}")
    elif p.kind in ("interval", "profile"):
        fields.append(f"period_ns={p.period_ns}")
    detail = " ".join(fields)
    return f"#{p.id} {p.kind} {detail}".rstrip() + f"  ({p.spec})"


def type_lines(t: TypeLayout) -> list[str]:
    if t.kind == "enum":
        values = ", ".join(f"{n}={v}" for n, v in t.enumerators)
        return [f"enum {t.name} (size {t.size}): {values}"]
    lines = [f"{t.kind} {t.name} (size {t.size}, align {t.align})"]
    for m in t.members:
        array = f"[{m.array_len}]" if m.array_len is not None else ""
        lines.append(
            f"{INDENT}+{m.offset:<4} {unparse.type_text(m.type)} {m.name}{array} (size {m.size})"
        )
    return lines


def format_plan(plan: Plan) -> str:
    out: list[str] = []
    out.append("config:" + ("" if plan.config.items else " (defaults)"))
    for name, value in plan.config.items:
        out.append(f"{INDENT}{name} = {value!r}")
    if plan.params:
        out.append("params: " + " ".join(f"${i}={p!r}" for i, p in enumerate(plan.params, 1)))
    out.append(f"unsafe: {'yes' if plan.unsafe else 'no'}")
    if plan.types:
        out.append("types:")
        for t in plan.types:
            out.extend(INDENT + line for line in type_lines(t))
    out.append("maps:" + ("" if plan.maps else " (none)"))
    for m in plan.maps:
        keys = ", ".join(m.key_kinds) if m.key_arity else "-"
        extra = f" lhist{m.lhist_args}" if m.lhist_args else ""
        out.append(f"{INDENT}@{m.name}  keys=[{keys}]  value={m.value_kind}{extra}")
    out.append("probes:")
    for p in plan.probes:
        out.append(INDENT + probe_line(p))
    for c in plan.clauses:
        ids = ", ".join(f"#{i}" for i in c.probes)
        out.append(f"clause {c.index}: probes {ids}" + ("  sync" if c.sync else ""))
        if c.predicate is not None:
            out.append(f"{INDENT}predicate: {unparse.bare(c.predicate)}")
        out.extend(INDENT + line for line in unparse.stmts(c.body) or ["(empty)"])
    return "\n".join(out) + "\n"
