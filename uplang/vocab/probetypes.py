"""Probe types: how each is spelled, whether its hits stop a thread, what it needs."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class ProbeType:
    """One kind of probe.

    name: the provider as ast.ProbeSpec holds it; plan_kind: PlanProbe.kind.
    stops_thread: a hit stops a thread of the target, so registers, arguments, the stack
    and thread-locals exist there. needs_process: it can only be placed in a traced
    process (-p PID or -c CMD). resolution: how the runtime finds its sites: 'symbol'
    (ELF function or address), 'usdt' (stapsdt notes), 'timer' (a period, no site) or
    'none' (runs once in the tracer).
    """

    name: str
    plan_kind: str
    aliases: tuple[str, ...]
    stops_thread: bool
    needs_process: bool
    resolution: str
    summary: str

    @property
    def has_sites(self) -> bool:
        """Placed at sites in files (a TARGET in its spec), not as a timer or once."""
        return self.resolution in ("symbol", "usdt")


PROBE_TYPES: tuple[ProbeType, ...] = (
    ProbeType("uprobe", "uprobe", ("u",), True, True, "symbol",
              "a function entry, FUNC+OFFSET or an address"),
    ProbeType("uretprobe", "uretprobe", ("ur",), True, True, "symbol", "a function return"),
    ProbeType("usdt", "usdt", ("U",), True, True, "usdt", "a USDT (stapsdt) probe"),
    ProbeType("BEGIN", "begin", ("begin",), False, False, "none", "once before tracing"),
    ProbeType("END", "end", ("end",), False, False, "none", "once after tracing"),
    ProbeType("interval", "interval", ("i",), False, False, "timer",
              "every period, in the tracer"),
    # wallclock shares profile's plan kind (a sampler); the planner tells them apart.
    ProbeType("wallclock", "profile", ("wall",), True, True, "timer",
              "every period, on each thread of the target, on a CPU or blocked"),
    ProbeType("profile", "profile", ("p",), True, True, "timer",
              "every period, on each thread of the target that is on a CPU"),
)

BY_NAME: MappingProxyType[str, ProbeType] = MappingProxyType(
    {t.name: t for t in PROBE_TYPES})
# Every spelling of a provider -> its name.
PROVIDER_ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {spelling: t.name for t in PROBE_TYPES for spelling in (t.name, *t.aliases)})
PROVIDERS = frozenset(BY_NAME)
# Providers (ast names) whose hits stop a thread of the target.
THREAD_KINDS = frozenset(t.name for t in PROBE_TYPES if t.stops_thread)
# Plan kinds placed at sites in files, in table order (the order they are placed in), and
# those placed as timers.
SITE_KINDS = tuple(t.plan_kind for t in PROBE_TYPES if t.has_sites)
TIMED_KINDS = tuple(dict.fromkeys(t.plan_kind for t in PROBE_TYPES if t.resolution == "timer"))

# bpftrace's kernel providers with their aliases: named so the error can say why.
KERNEL_PROVIDERS = frozenset(
    "kprobe k kretprobe kr tracepoint t rawtracepoint rt kfunc f fentry kretfunc fr fexit "
    "software s hardware h watchpoint w asyncwatchpoint aw iter it".split()
)
DTRACE_PID = "pid$target"


def thread_kinds_text() -> str:
    """How a message names the probe types that stop a thread."""
    names = ", ".join(t.name for t in PROBE_TYPES if t.stops_thread)
    return f"probes that stop a thread ({names})"
