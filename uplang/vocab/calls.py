"""Builtins and functions: what each returns, takes, reads, and where it may be used.

One row per word. The checks read the arity, argument kinds, result kind and where it is
legal; the planner decides from `reads_regs` whether a clause may take the register-free
fast path; completion and highlighting list the names; the handler compiler implements
each row (runtime.handlers.codegen: `e_Builtin` and one `f_NAME` per function).

Argument kinds (a trailing `?` marks an optional argument, `*` any number of them):
  int       an integer expression        const     an integer literal
  str       a string expression          strlit    a string literal
  addr      an address or a string       fmt       a printf format literal
  value     any value                    map       a whole map (@m)
  elem      a map element (@m[k])        key       one key element
  register  a register name literal      signal    a signal name or number
  mode      a ustack mode word (bpftrace, perf, raw) or a limit literal
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from uplang.vocab.probetypes import PROVIDERS, THREAD_KINDS

ALL_KINDS = PROVIDERS  # a word without restrictions is legal in every probe type


@dataclass(frozen=True)
class Word:
    """A builtin (no parentheses) or a function (called).

    result: the value kind ('int', 'str', 'stack', 'usym', 'buf', 'void', or the
    aggregation's own name). reads_regs: evaluating it reads the hit thread's registers
    (arguments, return value, stack, rip), so a clause using it cannot skip GETREGS.
    needs_thread: only legal in probes that stop a thread. probe_kinds: a narrower set of
    probe types (ast provider names) where it is legal; None means every type (or the
    thread-stopping ones when needs_thread).
    """

    name: str
    result: str
    args: tuple[str, ...] = ()
    function: bool = True
    reads_regs: bool = False
    needs_thread: bool = False
    probe_kinds: frozenset[str] | None = None
    where_text: str = ""
    unsafe: bool = False
    aggregation: bool = False
    scalar: bool = False  # an aggregation whose element reads as one integer

    @property
    def min_args(self) -> int:
        return sum(1 for a in self.args if not a.endswith(("?", "*")))

    @property
    def max_args(self) -> int:
        """-1: any number."""
        return -1 if any(a.endswith("*") for a in self.args) else len(self.args)

    @property
    def allowed(self) -> frozenset[str]:
        if self.probe_kinds is not None:
            return self.probe_kinds
        return THREAD_KINDS if self.needs_thread else ALL_KINDS

    def arg_kind(self, i: int) -> str:
        """The kind of argument i (0-based) without its `?`/`*` mark; '' past the end."""
        if i < len(self.args):
            return self.args[i].rstrip("?*")
        if self.args and self.args[-1].endswith("*"):
            return self.args[-1].rstrip("*")
        return ""


def _b(name: str, result: str, **kw: Any) -> Word:
    return Word(name, result, function=False, **kw)


BUILTINS: tuple[Word, ...] = (
    _b("pid", "int"),
    _b("tid", "int"),
    _b("ppid", "int"),
    _b("uid", "int"),
    _b("gid", "int"),
    _b("comm", "str"),
    _b("pcomm", "str"),  # the parent process's comm
    _b("leader_comm", "str"),  # the comm of the thread-group leader
    _b("cgroup", "int"),  # the cgroup v2 id (the directory's inode number), as bpftrace
    _b("cpu", "int"),
    _b("nsecs", "int"),
    _b("elapsed", "int"),
    _b("cpid", "int"),
    _b("rand", "int"),
    _b("probe", "str"),
    _b("retval", "int", reads_regs=True, needs_thread=True,
       probe_kinds=frozenset({"uretprobe"}), where_text="uretprobe probes"),
    _b("func", "str", reads_regs=True, needs_thread=True),
    _b("ustack", "stack", reads_regs=True, needs_thread=True),
)

# arg0..argN: one row for the family.
ARG = _b("arg", "int", reads_regs=True, needs_thread=True,
         probe_kinds=frozenset({"uprobe", "usdt"}), where_text="uprobe and usdt probes")
ARG_RE = re.compile(r"arg([0-9]|[1-9][0-9])")
MAX_ARG = 31

FUNCTIONS: tuple[Word, ...] = (
    Word("printf", "void", ("fmt", "value*")),
    Word("print", "void", ("value", "int?", "int?")),
    Word("str", "str", ("addr", "int?")),
    Word("buf", "buf", ("int", "int")),
    Word("strlen", "int", ("str",)),
    Word("strcontains", "int", ("str", "str")),
    Word("strncmp", "int", ("str", "str", "const")),
    Word("usym", "usym", ("int",)),
    Word("uaddr", "int", ("strlit",)),
    # ntop([af,] addr): an IPv4 address (an integer as stored, or 4 bytes) or IPv6 (16).
    Word("ntop", "str", ("value", "value?")),
    Word("reg", "int", ("register",), reads_regs=True, needs_thread=True),
    Word("time", "void", ("strlit?",)),
    # A timestamp prints (%s, print) and may be stored; it is no string to compare or cut.
    Word("strftime", "timestamp", ("strlit", "int")),
    Word("join", "void", ("int", "strlit?"), needs_thread=True),
    Word("cat", "void", ("fmt", "value*")),
    Word("exit", "void", ("int?",)),
    Word("system", "void", ("fmt", "value*"), unsafe=True),
    # A uprobe extension: delays the effects queued after it, never the target.
    Word("sleep", "void", ("int",)),
    Word("signal", "void", ("signal",), unsafe=True, needs_thread=True),
    Word("ustack", "stack", ("mode?", "const?"), reads_regs=True, needs_thread=True),
    Word("count", "count", (), aggregation=True, scalar=True),
    Word("sum", "sum", ("int",), aggregation=True, scalar=True),
    Word("avg", "avg", ("int",), aggregation=True, scalar=True),
    Word("min", "min", ("int",), aggregation=True, scalar=True),
    Word("max", "max", ("int",), aggregation=True, scalar=True),
    Word("stats", "stats", ("int",), aggregation=True),
    Word("hist", "hist", ("int", "const?"), aggregation=True),
    Word("lhist", "lhist", ("int", "const", "const", "const"), aggregation=True),
    Word("delete", "void", ("elem", "key*")),
    Word("clear", "void", ("map",)),
    Word("zero", "void", ("map",)),
    Word("has_key", "int", ("map", "key", "key*")),
    Word("len", "int", ("map",)),
)

BUILTIN_BY_NAME: MappingProxyType[str, Word] = MappingProxyType({w.name: w for w in BUILTINS})
FUNCTION_BY_NAME: MappingProxyType[str, Word] = MappingProxyType({w.name: w for w in FUNCTIONS})
AGGREGATIONS = frozenset(w.name for w in FUNCTIONS if w.aggregation)
# Aggregations whose element reads as one integer; the others only print.
SCALAR_AGGREGATIONS = frozenset(w.name for w in FUNCTIONS if w.scalar)
USTACK_MODES = ("bpftrace", "perf", "raw")

# DTrace spellings of builtins, accepted as aliases (the parser maps them).
BUILTIN_ALIASES = MappingProxyType({"execname": "comm"})

# Kernel-only vocabulary of bpftrace: named so the error can say why, not "unknown".
KERNEL_NAMES = frozenset(
    "kstack ksym kaddr kptr curtask cgroupid cgroup_path override bpf_get_current_task "
    "sarg0 sarg1 sarg2 sarg3 sarg4 sarg5 percpu_kaddr socket_cookie skboutput macaddr".split()
)

SIGNALS = frozenset(
    "SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV "
    "SIGUSR2 SIGPIPE SIGALRM SIGTERM SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG "
    "SIGXCPU SIGXFSZ SIGVTALRM SIGPROF SIGWINCH SIGIO SIGSYS".split()
)

CONFIG_KEYS: MappingProxyType[str, str] = MappingProxyType({
    # name: 'int' (positive integer), 'bool', or 'a|b|c' (one of the words)
    "max_strlen": "int",
    "max_map_keys": "int",
    "max_loop_iterations": "int",
    "max_probes": "int",
    "max_ustack": "int",
    "print_maps_on_exit": "bool",
    "stack_mode": "|".join(USTACK_MODES),
    "missing_probes": "error|warn|ignore",
    # The jump path's event ring: its size in records (rounded up to a power of two), and
    # what a writer does when it is full: wait for the tracer (nothing lost) or drop.
    "ring_records": "int",
    "ring_full": "wait|drop",
})


def builtin(name: str) -> Word | None:
    """The row of a builtin name, arg0..argN included."""
    if ARG_RE.fullmatch(name):
        return ARG
    return BUILTIN_BY_NAME.get(name)


def reads_registers(name: str, function: bool) -> bool:
    """Whether a use of this word reads registers; an unknown word counts as reading."""
    row = FUNCTION_BY_NAME.get(name) if function else builtin(name)
    return True if row is None else row.reads_regs


def all_names() -> frozenset[str]:
    """Every identifier a misspelling could have meant."""
    return (frozenset(BUILTIN_BY_NAME) | frozenset(FUNCTION_BY_NAME)
            | frozenset(f"arg{i}" for i in range(6)))
