"""Probe specs: from the segments as written to a normalised ast.ProbeSpec, and what is wrong.

One function interprets a spec and returns both the normalised fields and the problems, so
the parser (which wants the spec) and the checks (which want the problems) cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from uplang.diagnostics import did_you_mean
from uplang.vocab.probetypes import BY_NAME, DTRACE_PID, KERNEL_PROVIDERS, PROVIDER_ALIASES

TIME_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "hz": 0}

_ADDRESS = re.compile(r"(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_FUNC_OFFSET = re.compile(r"(.+)\+((?:0[xX][0-9a-fA-F]+|[0-9]+))")
_UNIT_VALUE = re.compile(r"([0-9][0-9_]*)(s|ms|us|hz)")


def parse_int(text: str) -> int:
    """C integer literal: decimal, 0x hex, 0-prefixed octal, with `_` separators allowed."""
    digits = text.replace("_", "")
    if digits[:2] in ("0x", "0X"):
        return int(digits[2:], 16)
    if len(digits) > 1 and digits[0] == "0":
        return int(digits[1:], 8)
    return int(digits, 10)


@dataclass(frozen=True)
class Segment:
    text: str
    quoted: bool = False
    suffix: str = ""  # `+OFFSET` after a quoted name

    def spelled(self) -> str:
        if not self.quoted:
            return self.text
        return '"' + self.text.replace("\\", "\\\\").replace('"', '\\"') + '"' + self.suffix


@dataclass
class Interpretation:
    """The ProbeSpec's fields (without span) and the problems found on the way."""

    fields: dict[str, object]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (message, hint)

    def fail(self, message: str, hint: str = "") -> Interpretation:
        self.problems.append((message, hint))
        return self


def raw_spelling(provider: str, segments: list[Segment]) -> str:
    return ":".join([provider, *(s.spelled() for s in segments)])


def split_raw(raw: str) -> tuple[str, list[Segment]]:
    """Inverse of raw_spelling: split at ':' outside double quotes."""
    parts: list[Segment] = []
    buf: list[str] = []
    suffix: list[str] = []  # what follows a closing quote: `+OFFSET`
    quoted = in_quotes = False
    i = 0
    while i < len(raw):
        ch = raw[i]
        if in_quotes:
            if ch == "\\" and i + 1 < len(raw):
                buf.append(raw[i + 1])
                i += 1
            elif ch == '"':
                in_quotes = False
            else:
                buf.append(ch)
        elif ch == '"':
            in_quotes = quoted = True
        elif ch == ":":
            parts.append(Segment("".join(buf), quoted, "".join(suffix)))
            buf, suffix, quoted = [], [], False
        elif quoted:
            suffix.append(ch)
        else:
            buf.append(ch)
        i += 1
    parts.append(Segment("".join(buf), quoted, "".join(suffix)))
    return parts[0].text, parts[1:]


def interpret(provider: str, segments: list[Segment]) -> Interpretation:
    """Normalise one probe as written; unknown providers keep their spelling as provider."""
    raw = raw_spelling(provider, segments)
    canonical = PROVIDER_ALIASES.get(provider)
    res = Interpretation({"provider": canonical or provider, "raw": raw})
    if canonical is None:
        if provider.startswith("pid"):
            return _dtrace_pid(provider, segments, res)
        if provider in KERNEL_PROVIDERS:
            return res.fail(
                f"'{provider}' probes trace the kernel; uprobe traces user space only",
                "use uprobe:, uretprobe: or usdt: on a user-space program",
            )
        return res.fail(f"unknown probe type '{provider}'", did_you_mean(provider, PROVIDER_ALIASES))
    resolution = BY_NAME[canonical].resolution
    if resolution == "none":
        if segments:
            res.fail(f"{canonical} takes no arguments", f"write just '{canonical}'")
        return res
    if resolution == "symbol":
        return _uprobe(canonical, segments, res)
    if resolution == "usdt":
        return _usdt(segments, res)
    return _timer(canonical, segments, res)


def interpret_listing(pattern: str) -> Interpretation:
    """A `uprobe -l` pattern, through the same spellings as a script: a missing or empty
    function or USDT name means every one (`uprobe:libc`, `usdt:./prog`). Anything that
    does not start with a known provider is a file, a library or `*`: fields
    {"provider": "", "target": pattern}."""
    provider, segments = split_raw(pattern)
    canonical = PROVIDER_ALIASES.get(provider)
    spec_like = canonical is not None or provider.startswith("pid") or (
        provider in KERNEL_PROVIDERS)
    if not segments or not spec_like:
        return Interpretation({"provider": "", "target": pattern, "raw": pattern})
    resolution = BY_NAME[canonical].resolution if canonical else "symbol"
    if resolution == "symbol" and canonical is not None and len(segments) == 1:
        segments = [*segments, Segment("*")]
    if resolution == "usdt" and len(segments) == 1:
        segments = [*segments, Segment("*")]
    if segments and not segments[-1].text and resolution in ("symbol", "usdt"):
        segments = [*segments[:-1], Segment("*")]
    res = interpret(provider, segments)
    if res.fields["provider"] not in ("uprobe", "uretprobe", "usdt") and not res.problems:
        res.fail(f"'{provider}' probes have nothing to list",
                 "list uprobe:, uretprobe: or usdt: probes, a file or a library")
    return res


def _uprobe(kind: str, segments: list[Segment], res: Interpretation) -> Interpretation:
    if len(segments) == 3 and not segments[1].quoted and segments[1].text in ("cpp", "c"):
        # bpftrace's language prefix: uprobe:prog:cpp:"ns::K::f". Names are matched
        # demangled as well anyway, so the prefix only has to be accepted.
        segments = [segments[0], segments[2]]
    if len(segments) != 2:
        return res.fail(f"expected {kind}:TARGET:FUNCTION (TARGET may be empty with -p)")
    target, func = segments
    res.fields["target"] = target.text
    if not func.text:
        return res.fail(f"{kind} needs a function name or address after the target")
    if func.quoted:
        res.fields["func"] = func.text
        if func.suffix:
            res.fields["offset"] = parse_int(func.suffix[1:])
            if kind == "uretprobe":
                return res.fail(
                    "offsets are not allowed on return probes",
                    "a return probe fires when the function returns; use uprobe: for "
                    "FUNC+OFFSET",
                )
        return res
    if _ADDRESS.fullmatch(func.text):
        res.fields["address"] = parse_int(func.text)
        return res
    match = _FUNC_OFFSET.fullmatch(func.text)
    if match:
        res.fields["func"] = match.group(1)
        res.fields["offset"] = parse_int(match.group(2))
        if kind == "uretprobe":
            return res.fail(
                "offsets are not allowed on return probes",
                "a return probe fires when the function returns; use uprobe: for FUNC+OFFSET",
            )
        if _has_glob(match.group(1)):
            return res.fail("an offset needs one function, not a wildcard pattern")
        return res
    res.fields["func"] = func.text
    if "/" in func.text:
        return res.fail(
            f"'/' in function name '{func.text}'",
            "a predicate needs whitespace before its opening '/'",
        )
    return res


def _usdt(segments: list[Segment], res: Interpretation) -> Interpretation:
    if len(segments) == 2:
        res.fields.update(target=segments[0].text, usdt_name=segments[1].text)
    elif len(segments) == 3:
        res.fields.update(
            target=segments[0].text, usdt_provider=segments[1].text, usdt_name=segments[2].text
        )
    else:
        return res.fail("expected usdt:TARGET:PROVIDER:NAME or usdt:TARGET:NAME")
    if not res.fields["usdt_name"]:
        res.fail("usdt probe needs a probe name")
    return res


def _timer(kind: str, segments: list[Segment], res: Interpretation) -> Interpretation:
    texts = [s.text for s in segments]
    if len(texts) == 1 and (m := _UNIT_VALUE.fullmatch(texts[0])):
        texts = [m.group(2), m.group(1)]
    if len(texts) != 2:
        return res.fail(f"expected {kind}:UNIT:N with UNIT one of s, ms, us, hz")
    unit, value = texts
    if unit not in TIME_UNITS:
        hint = did_you_mean(unit, TIME_UNITS) or "units are s, ms, us and hz"
        return res.fail(f"unknown {kind} unit '{unit}'", hint)
    res.fields["unit"] = unit
    try:
        number = parse_int(value)
    except ValueError:
        return res.fail(f"{kind} needs a whole number of {unit}, got '{value}'")
    if number <= 0:
        return res.fail(f"{kind} period must be positive")
    res.fields["value"] = number
    return res


def _dtrace_pid(provider: str, segments: list[Segment], res: Interpretation) -> Interpretation:
    """DTrace's pid provider: pid$target:MODULE:FUNC:entry|return|OFFSET (hex, as in DTrace)."""
    if provider != DTRACE_PID:
        res.fields["provider"] = provider
        return res.fail(
            f"unknown probe type '{provider}'",
            "the DTrace pid provider is spelled pid$target; give the process with -p PID",
        )
    if len(segments) != 3:
        return res.fail("expected pid$target:MODULE:FUNCTION:entry|return|OFFSET")
    module, func, name = (s.text for s in segments)
    # a.out is DTrace's name for the main executable, which is the empty target here.
    target = "" if module in ("a.out", "") else module
    res.fields.update(target=target, func=func)
    if not func:
        return res.fail("pid$target probe needs a function name")
    if name == "entry":
        res.fields["provider"] = "uprobe"
    elif name == "return":
        res.fields["provider"] = "uretprobe"
    elif re.fullmatch(r"(?:0[xX])?[0-9a-fA-F]+", name):
        res.fields["provider"] = "uprobe"
        res.fields["offset"] = int(name, 16)
    else:
        res.fields["provider"] = "uprobe"
        hint = did_you_mean(name, ("entry", "return")) or "use entry, return or a hex offset"
        return res.fail(f"unknown pid$target probe name '{name}'", hint)
    return res


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")
