"""Rendering a benchmark run as bench/RESULTS.md (Markdown tables, numbers only: the
reading of them lives in docs/benchmarks.md, which a re-run does not overwrite)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from hotpath_costs import Cost
from hotpath_profile import Profile
from machine import Machine
from startup import Attach, Memory
from trappath import CaseResult, per_hit_us, spread_us

TARGET_RATIO = 1.3


@dataclass(frozen=True)
class Accounting:
    """One instrumented run: per-hit microseconds for each step of the tracer's cycle."""

    label: str
    period_us: float
    steps: list[tuple[str, float, float]]  # (step, calls per hit, us per hit)
    wrapper_us: float


@dataclass
class Report:
    machine: Machine
    command: str
    runs: int
    calls: int
    load_before: str
    load_after: str = ""
    trap: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    accounting: list[Accounting] = field(default_factory=list)
    costs: list[Cost] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    interpreter_s: float | None = None
    dry_run_s: float | None = None
    first_probe_s: float | None = None
    resolve: tuple[int, float] | None = None
    attaches: list[Attach] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "n/a"
    return f"{a / b:.2f}x"


def _find(results: list[CaseResult], tool: str, name_part: str,
          placement: str) -> CaseResult | None:
    for r in results:
        c = r.case
        if c.tool == tool and name_part in c.name and c.placement == placement:
            return r
    return None


def _trap_table(rep: Report) -> list[str]:
    base = next(r for r in rep.trap if r.case.baseline)
    out = [
        "| tool | case | CPU placement | calls | per hit (us, median) | per call, min..max "
        "over runs (us) | / uprobe count() | / raw C | runs ok |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep.trap:
        c = r.case
        if c.baseline:
            b = base.median_loop_ns()
            per_call = "n/a" if b is None else f"{b / c.calls:.1f} ns"
            out.append(f"| - | {c.name} | {c.placement} | {c.calls} | (loop {per_call}/call) "
                       f"| | | | {len(r.loop_ns)}/{rep.runs} |")
            continue
        hit = per_hit_us(r, base)
        ref_u = _find(rep.trap, "uprobe", "count()", c.placement)
        ref_r = _find(rep.trap, "raw", "raw", c.placement)
        u = per_hit_us(ref_u, base) if ref_u else None
        raw = per_hit_us(ref_r, base) if ref_r else None
        span = spread_us(r)
        span_s = "n/a" if span is None else f"{span[0]:.2f}..{span[1]:.2f}"
        out.append(f"| {c.tool} | {c.name} | {c.placement} | {c.calls} | {_f(hit)} | {span_s} "
                   f"| {_ratio(hit, u)} | {_ratio(hit, raw)} | {len(r.loop_ns)}/{rep.runs} |")
    return out


def _placement_summary(rep: Report) -> list[str]:
    base = next(r for r in rep.trap if r.case.baseline)
    out = ["| tracer | unpinned | pinned (tracer + target on one CPU) | tracer pinned, target free "
           "| unpinned / pinned |", "|---|---:|---:|---:|---:|"]
    for tool, part, label in (("raw", "raw", "raw C tracer"),
                              ("uprobe", "count()", "uprobe CLI, count()"),
                              ("uprobe-lib", "closure", "uprobe library API, closure")):
        vals = []
        for placement in ("unpinned", "pinned", "tracer pinned"):
            r = _find(rep.trap, tool, part, placement)
            vals.append(per_hit_us(r, base) if r else None)
        out.append(f"| {label} | {_f(vals[0])} | {_f(vals[1])} | {_f(vals[2])} "
                   f"| {_ratio(vals[0], vals[1])} |")
    return out


def _verdict(rep: Report) -> list[str]:
    base = next(r for r in rep.trap if r.case.baseline)
    out = []
    for placement in ("unpinned", "pinned"):
        u = _find(rep.trap, "uprobe", "count()", placement)
        raw = _find(rep.trap, "raw", "raw", placement)
        hu = per_hit_us(u, base) if u else None
        hr = per_hit_us(raw, base) if raw else None
        if hu is None or hr is None:
            continue
        status = "within" if hu / hr <= TARGET_RATIO else "NOT within"
        out.append(f"- {placement}: uprobe count() {hu:.2f} us vs raw C {hr:.2f} us per hit = "
                   f"{hu / hr:.2f}x, {status} the {TARGET_RATIO}x target "
                   f"(gap {hu - hr:+.2f} us per hit).")
    return out


def _accounting(rep: Report) -> list[str]:
    out = []
    for a in rep.accounting:
        out += [f"**{a.label}**: hit period {a.period_us:.2f} us under instrumentation "
                f"(each timed call adds ~{a.wrapper_us:.2f} us of wrapper, counted inside "
                "the step it wraps and in the rest).", "",
                "| step | calls per hit | us per hit | share |", "|---|---:|---:|---:|"]
        for step, calls, us in a.steps:
            share = us / a.period_us * 100 if a.period_us else 0
            out.append(f"| {step} | {calls:.2f} | {us:.2f} | {share:.0f}% |")
        out.append("")
    return out


def _costs(rep: Report) -> list[str]:
    out = ["| step | from Python (ns) | from C (ns) | Python adds (ns) |", "|---|---:|---:|---:|"]
    for c in rep.costs:
        add = "" if c.c_ns is None else f"{c.python_ns - c.c_ns:.0f}"
        c_ns = "-" if c.c_ns is None else f"{c.c_ns:.0f}"
        out.append(f"| {c.step} | {c.python_ns:.0f} | {c_ns} | {add} |")
    return out


def _profiles(rep: Report) -> list[str]:
    out = []
    for p in rep.profiles:
        out += [f"**{p.placement}**, {p.calls} calls, {p.per_hit_us:.2f} us per hit in the "
                f"profiled run, {p.samples} samples in the engine loop:", "",
                "| category (inclusive) | share | us per hit |", "|---|---:|---:|"]
        out += [f"| {name} | {share * 100:.1f}% | {us:.2f} |" for name, share, us in p.categories]
        out += ["", "| leaf (self) | source | share | us per hit |", "|---|---|---:|---:|"]
        out += [f"| `{ln.where}` | `{ln.source}` | {ln.share * 100:.1f}% | {ln.us_per_hit:.2f} |"
                for ln in p.lines]
        out.append("")
    return out


def _all(values: list[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def _startup(rep: Report) -> list[str]:
    out = ["| what | value |", "|---|---:|"]
    if rep.interpreter_s is not None:
        out.append(f"| `uprobe --version` (interpreter + imports), median | "
                   f"{rep.interpreter_s:.3f} s |")
    if rep.dry_run_s is not None:
        out.append(f"| `uprobe --dry-run` of one probe (+ grammar, parse, check, plan), median "
                   f"| {rep.dry_run_s:.3f} s |")
    if rep.first_probe_s is not None:
        out.append(f"| start-up to first probe placed (`-c`, 1 probe, until `Attached 1 probe`) "
                   f"| {rep.first_probe_s:.3f} s |")
    if rep.resolve is not None:
        out.append(f"| resolve {rep.resolve[0]} wildcard sites on python3.11 (in-process, cold "
                   f"ELF cache) | {rep.resolve[1]:.3f} s |")
    if rep.attaches:
        sites = rep.attaches[0].sites
        place = [a.to_attached_s for a in rep.attaches]
        leave = [a.detach_s for a in rep.attaches]
        out.append(f"| attach to a running python3.11 and place {sites} probes (CLI start to "
                   f"`Attached`), median of {len(place)}: {_all(place)} | "
                   f"{statistics.median(place):.3f} s |")
        out.append(f"| detach {sites} probes (Ctrl-C to exit, target still answers after), "
                   f"median of {len(leave)}: {_all(leave)} | {statistics.median(leave):.3f} s |")
    out += ["", "| peak RSS of the tool (ru_maxrss) | events | KiB | wall (s) |",
            "|---|---:|---:|---:|"]
    out += [f"| {m.label} | {m.events} | {m.maxrss_kib} | {m.wall_s:.1f} |" for m in rep.memory]
    return out


def render(rep: Report) -> str:
    m = rep.machine
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{rep.command}` on {m.date}; how to read it: docs/benchmarks.md.",
        "",
        "## Machine",
        "",
        "| CPU | CPUs | hypervisor | kernel | Python | load (1 min) before / after |",
        "|---|---:|---|---|---|---|",
        f"| {m.model} | {m.cpus} | {m.hypervisor} | {m.kernel} | {m.python} | "
        f"{rep.load_before} / {rep.load_after} |",
        "",
    ]
    if rep.trap:
        lines += [
            f"## Trap path: cost per hit ({rep.runs} interleaved runs, medians)",
            "",
            "per hit = (target's own loop time with the tool - without) / calls. One uretprobe "
            "hit is a call: entry trap + return trap. Ratios compare with uprobe `count()` and "
            "the raw C tracer in the same CPU placement.",
            "",
            *_trap_table(rep),
            "",
            "### CPU placement (per hit, us)",
            "",
            *_placement_summary(rep),
            "",
            "### Against the target (uprobe within 1.3x of the raw C tracer)",
            "",
            *_verdict(rep),
            "",
        ]
    if rep.accounting:
        lines += ["## Where a hit's time goes (instrumented CLI runs)", "",
                  *_accounting(rep)]
    if rep.costs:
        lines += ["## Hot-path primitives, one by one (best of 5)", "",
                  "ptrace requests on a stopped tracee (the engine's ctypes bindings vs C), "
                  "and the engine's per-hit Python steps.", "", *_costs(rep), ""]
    if rep.profiles:
        lines += ["## Sampling profile (py-spy --nonblocking --idle, tracer thread)", "",
                  "Sampling at 500 Hz against a ~20 us cycle aliases with the scheduler on a "
                  "busy 2-CPU machine: shares move a lot between runs. The instrumented "
                  "table above is the one to trust for amounts; this one shows the lines.", "",
                  *_profiles(rep)]
    if rep.interpreter_s is not None or rep.memory:
        lines += ["## Start-up, mass placement, memory", "", *_startup(rep), ""]
    if rep.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in rep.notes], ""]
    return "\n".join(lines)
