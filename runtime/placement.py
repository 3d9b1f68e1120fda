"""Placing a plan's probes into a session: the one path shared by `uprobe run` and the REPL.

A `Placer` turns one plan probe (uprobe, uretprobe, usdt, interval, profile) into things
placed on a session, and every config key that shapes a run is read here once
(`Settings`). The executor places a whole plan once; the REPL's live driver places and
removes clauses while the target runs. Both get the same labels, the same register-free
fast path, the same `max_probes` / `missing_probes` policy, and the same handles: every
placed thing, a breakpoint, a timer or a sampler, is removed the same way.

The seam for placement strategies: a resolved site (`Site`) is handed to the placer's
strategies in order; the first that takes it places it. Today there is one, `TrapStrategy`
(int3 + out-of-line copy, runtime/uprobes.py). A strategy that cannot take a site raises
`NotEligible` with the reason and the next one is tried, so a jump strategy goes in front
of the trap and a site it refuses keeps its int3 (docs/architecture.md "Placement").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from runtime.errors import ResolveError, TargetError, UprobeError
from runtime.handlers.contexts import Handler, Hit, ManualContext, ProbeInfo, UsdtContext
from uplang.plan import Config, PlanClause, PlanProbe
from uplang.vocab.probetypes import SITE_KINDS

if TYPE_CHECKING:
    # Imported where used: ELF and instruction decoding cost start-up time that a
    # script without probes in a process never needs.
    from runtime.resolve import Placement, UsdtPlacement

# Plan kinds placed at sites in files (in placing order), and those placed as timers.
TRACE_KINDS = SITE_KINDS
DEFAULT_MAX_STRLEN = 64
# bpftrace's default: a map holds at most this many keys; new keys beyond are dropped.
DEFAULT_MAX_MAP_KEYS = 4096


class PlacementLimitError(UprobeError):
    """The plan places more probes than `max_probes` allows."""


class NotEligible(UprobeError):
    """A strategy cannot place this site (the message says why); the next one may."""


@dataclass(frozen=True)
class Settings:
    """The run-time config keys of a plan, read once. The handler compiler reads the keys
    that shape generated code (max_ustack, max_loop_iterations) from the plan itself."""

    max_map_keys: int = DEFAULT_MAX_MAP_KEYS
    max_strlen: int = DEFAULT_MAX_STRLEN
    stack_mode: str = "bpftrace"
    missing_probes: str = "error"
    max_probes: int = 0
    print_maps_on_exit: bool = True
    # --unsafe (or the script's `unsafe`): address probes whose boundary is unproven go in.
    unsafe: bool = False

    @classmethod
    def of(cls, config: Config) -> Settings:
        def num(key: str, default: int) -> int:
            value = config.get(key, default)
            return int(value) if isinstance(value, (int, str)) else default

        return cls(
            max_map_keys=num("max_map_keys", DEFAULT_MAX_MAP_KEYS),
            max_strlen=num("max_strlen", DEFAULT_MAX_STRLEN) or DEFAULT_MAX_STRLEN,
            stack_mode=str(config.get("stack_mode", "bpftrace")),
            missing_probes=str(config.get("missing_probes", "error")),
            max_probes=num("max_probes", 0),
            print_maps_on_exit=bool(config.get("print_maps_on_exit", 1)),
        )

    def apply(self, store: Any, support: Any) -> None:
        """Configure the map store and the handlers' run-time support (both live as long
        as a run or a REPL session; the REPL applies each new plan's settings again)."""
        store.max_keys = self.max_map_keys
        support.max_strlen = self.max_strlen
        support.stack_mode = self.stack_mode


class ProbeHost(Protocol):
    """What placing needs of a session (runtime.session.Session)."""

    @property
    def pid(self) -> int: ...

    @property
    def effects(self) -> Any: ...

    def add_probe(self, placement: Any, handler: Handler, kind: str = ..., sync: bool = ...,
                  label: str = ..., semaphore: int | None = ...,
                  reads_regs: bool = ..., installer: Any = ...) -> Any: ...

    def remove_probe(self, probe: Any) -> None: ...

    def add_timer(self, period_ns: int, callback: Callable[[], None]) -> Any: ...

    def remove_timer(self, timer: Any) -> None: ...

    def add_sampler(self, hz: int, handler: Handler, label: str = ...,
                    on_cpu: bool = ...) -> Any: ...

    def remove_sampler(self, sampler: Any) -> None: ...

    def batch(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class Site:
    """One resolved site of a plan probe, ready for a strategy."""

    placement: Placement
    handler: Handler
    kind: str  # "entry" or "return"
    sync: bool
    label: str
    semaphore: int | None = None
    # False: the handler never reads registers, so a hit may read rip alone.
    reads_regs: bool = True
    # The plan clause (index into Plan.clauses) whose handler this is; -1: none.
    clause: int = -1


@dataclass(eq=False)
class Placed:
    """One thing placed in the session: a site, a timer or a sampler. `handle` is the
    session's own object (uprobes.Probe, wakeup.Timer, sampler.Sampler)."""

    label: str
    how: str  # the strategy's name, or "timer" / "sampler"
    handle: Any
    undo: Callable[[], None]

    def remove(self) -> None:
        self.undo()


class Strategy(Protocol):
    """A way to place a resolved site: returns what it placed, or raises NotEligible."""

    name: str

    def place(self, host: ProbeHost, site: Site) -> Placed: ...


class TrapStrategy:
    """int3 at the site, the displaced instruction run out of line or emulated."""

    name = "trap"

    def place(self, host: ProbeHost, site: Site) -> Placed:
        probe = host.add_probe(site.placement, site.handler, kind=site.kind, sync=site.sync,
                               label=site.label, semaphore=site.semaphore,
                               reads_regs=site.reads_regs)
        return Placed(site.label, self.name, probe, lambda: host.remove_probe(probe))


@dataclass(eq=False)
class PlacedProbe:
    """Everything one plan probe placed; grows when an exec maps its files again."""

    probe: PlanProbe
    clause: PlanClause
    handler: Handler
    parts: list[Placed] = field(default_factory=list)
    # (kind, dev, ino, file offset) of the sites placed: none twice after an exec.
    keys: set[tuple[str, int, int, int]] = field(default_factory=set)


class Placer:
    """Places plan probes on one session and removes them again.

    warn: where warnings go (missing_probes = warn, failures after an exec);
    note: where `-v` lines go (None: not verbose).
    """

    def __init__(self, host: ProbeHost, settings: Settings, *,
                 warn: Callable[[str], None], note: Callable[[str], None] | None = None,
                 strategies: Sequence[Strategy] = (TrapStrategy(),)) -> None:
        self.host = host
        self.settings = settings
        self.warn = warn
        self.note = note
        self.strategies = tuple(strategies)
        self.groups: list[PlacedProbe] = []
        # The placer of each plan kind (uplang.vocab.probetypes): a new probe type adds
        # its row here. Each returns how many things it placed.
        self._placers: dict[str, Callable[[PlacedProbe, int | None], int]] = {
            "uprobe": self._place_symbols,
            "uretprobe": self._place_symbols,
            "usdt": self._place_usdt,
            "interval": self._place_timer,
            "profile": self._place_sampler,
        }

    def place_all(self, items: Iterable[tuple[PlanProbe, PlanClause, Handler]]
                  ) -> list[PlacedProbe]:
        """Place several probes (a whole plan, or one REPL clause), applying
        missing_probes to specs that match nothing and max_probes to the sites placed.
        All or nothing: on an error what this call placed is removed again."""
        groups: list[PlacedProbe] = []
        try:
            with self.host.batch():
                self._place_each(items, groups)
            limit = self.settings.max_probes
            if limit and self.site_count() > limit:
                raise PlacementLimitError(
                    f"the script places {self.site_count()} probes, more than "
                    f"max_probes = {limit}")
        except BaseException:
            for group in groups:
                self.remove(group)
            raise
        return groups

    def _place_each(self, items: Iterable[tuple[PlanProbe, PlanClause, Handler]],
                    groups: list[PlacedProbe]) -> None:
        for probe, clause, handler in items:
            try:
                groups.append(self.place(probe, clause, handler))
            except ResolveError as exc:
                # config missing_probes: a spec that matches nothing is an error
                # (default), a warning, or ignored; in bpftrace's words.
                what = f"Unable to attach probe: {probe.spec}."
                if self.settings.missing_probes == "error":
                    exc.advice = (f"{what} If this is expected, set the "
                                  "'missing_probes' config variable to 'warn'.")
                    raise
                if self.settings.missing_probes == "warn":
                    self.warn(f"WARNING: {exc.message}\nWARNING: {what} If this is "
                              "expected, set the 'missing_probes' config variable to "
                              "'ignore'.\n")

    def place(self, probe: PlanProbe, clause: PlanClause, handler: Handler) -> PlacedProbe:
        """Place one plan probe; a spec that resolves to nothing raises ResolveError, a
        site that cannot be placed the strategy's error. Nothing stays placed on error."""
        group = PlacedProbe(probe, clause, handler)
        place = self._placers.get(probe.kind)
        if place is None:
            raise UprobeError(f"{probe.kind} probes are not placed in a process")
        try:
            # pid 0: no process yet (system-wide): targets resolve as files alone.
            place(group, self.host.pid or None)
        except BaseException:
            self._undo(group)
            raise
        self.groups.append(group)
        return group

    def remove(self, group: PlacedProbe) -> None:
        """Take out everything the probe placed (a target that is gone is no error)."""
        self._undo(group)
        if group in self.groups:
            self.groups.remove(group)

    def site_count(self) -> int:
        """Sites placed for uprobe, uretprobe and usdt probes (what max_probes limits)."""
        return sum(len(g.parts) for g in self.groups if g.probe.kind in TRACE_KINDS)

    def after_exec(self, pid: int) -> None:
        """A traced process exec'd: resolve every traced spec again against its new image,
        where "" (the main executable), short names and wildcards may name other files. A
        spec that matches nothing there is no error: the new program is simply not probed
        by it. Sites already placed (the same file) are not added twice."""
        for group in self.groups:
            if group.probe.kind not in TRACE_KINDS:
                continue
            try:
                added = self._placers[group.probe.kind](group, pid)
            except (ResolveError, TargetError):
                continue
            except UprobeError as exc:
                self.warn(f"warning: {group.probe.spec} in pid {pid}: {exc}\n")
                continue
            if added and self.note is not None:
                self.note(f"{group.probe.spec}: {added} more after exec in pid {pid}\n")

    # ------------------------------------------------------------------ sites

    def _place_usdt(self, group: PlacedProbe, pid: int | None) -> int:
        from runtime.resolve import resolve_usdt, shown_target

        probe = group.probe
        added = 0
        for up in resolve_usdt(probe.target, probe.usdt_provider, probe.usdt_name, pid):
            shown = shown_target(probe.target, up.placement.path)
            label = f"usdt:{shown}:{up.probe.provider}:{up.probe.name}"
            # USDT handlers decode their arguments from registers: never register-free.
            added += self._place_site(group, Site(
                up.placement, usdt_handler(group.handler, up), "entry", group.clause.sync,
                label, up.semaphore_offset, clause=probe.clause))
        return added

    def _place_symbols(self, group: PlacedProbe, pid: int | None) -> int:
        from runtime.resolve import resolve_uprobe, shown_target

        probe = group.probe
        ret = probe.kind == "uretprobe"
        added = 0
        for pl in resolve_uprobe(probe.target, probe.func, probe.offset, probe.address, pid,
                                 want_return=ret, unsafe=self.settings.unsafe):
            if pl.unproven:
                self.warn(f"WARNING: {probe.spec}: nothing proves {pl.vaddr:#x} starts an "
                          "instruction; placed because of --unsafe\n")
            # An address probe is shown as written, not by the function it lies in.
            where = f"0x{probe.address:x}" if probe.address is not None else \
                pl.symbol or f"0x{pl.vaddr:x}"
            if probe.offset and pl.symbol and probe.address is None:
                where += f"+{probe.offset}"
            # Return probes need rsp at the entry: only plain entries may skip registers.
            lean = not ret and not group.clause.reads_regs
            shown = shown_target(probe.target, pl.path)
            added += self._place_site(group, Site(
                pl, group.handler, "return" if ret else "entry", group.clause.sync,
                f"{probe.kind}:{shown}:{where}", reads_regs=not lean,
                clause=probe.clause))
        return added

    def _place_site(self, group: PlacedProbe, site: Site) -> int:
        pl = site.placement
        key = (site.kind, pl.dev, pl.ino, pl.file_offset)
        if key in group.keys:
            return 0
        reasons: list[str] = []
        for strategy in self.strategies:
            try:
                placed = strategy.place(self.host, site)
            except NotEligible as exc:
                reasons.append(f"{strategy.name}: {exc.message}")
                continue
            break
        else:
            raise NotEligible(f"{site.label}: no way to place it ({'; '.join(reasons)})")
        group.parts.append(placed)
        group.keys.add(key)
        if self.note is not None:
            # Which way the site went and, when a strategy in front declined, why.
            path, _, extra = placed.how.partition(": ")
            why = "; ".join([r.split(": ", 1)[1] for r in reasons] + ([extra] if extra else []))
            how = f"{path} path" + (f" ({why})" if why else "")
            self.note(f"{site.label}: {pl.path} file offset 0x{pl.file_offset:x}"
                      f"{' (sync)' if site.sync else ''}: {how}\n")
        return 1

    # ------------------------------------------------------------------ timed probes

    def _place_timer(self, group: PlacedProbe, pid: int | None) -> int:
        host = self.host
        handler = group.handler
        info = ProbeInfo(group.probe.spec, "interval")
        # Timer handlers run in the tracer between hits; their effects go through the same
        # queue as the hits' so that output stays in order.
        submit = host.effects.submit

        def tick() -> None:
            handler(ManualContext(info, submit))

        timer = host.add_timer(group.probe.period_ns, tick)
        group.parts.append(Placed(group.probe.spec, "timer", timer,
                                  lambda: host.remove_timer(timer)))
        return 1

    def _place_sampler(self, group: PlacedProbe, pid: int | None) -> int:
        host = self.host
        sampler = host.add_sampler(sampling_hz(group.probe), group.handler, group.probe.spec,
                                   on_cpu=not group.probe.offcpu)
        group.parts.append(Placed(group.probe.spec, "sampler", sampler,
                                  lambda: host.remove_sampler(sampler)))
        return 1

    @staticmethod
    def _undo(group: PlacedProbe) -> None:
        while group.parts:
            part = group.parts.pop()
            try:
                part.remove()
            except UprobeError:
                pass  # the process is gone, and its breakpoints with it
        group.keys.clear()


def sampling_hz(probe: PlanProbe) -> int:
    return max(1, round(1_000_000_000 / probe.period_ns)) if probe.period_ns else 1


def usdt_handler(handler: Handler, up: UsdtPlacement) -> Handler:
    """A usdt placement's handler: the hit context's arg(n) read the note's argument specs."""
    from runtime.elfsyms import ElfFile

    elf = ElfFile.open(up.placement.path)
    note = up.probe

    def on_hit(ctx: Hit) -> None:
        # At the hit rip is the probe's runtime pc: that gives the load bias of this very
        # mapping, right after an exec or a second dlopen at another address too.
        handler(UsdtContext(ctx, note, elf, note.bias_at(ctx.regs.rip)))

    return on_hit
