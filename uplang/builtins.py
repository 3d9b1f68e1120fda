"""The language's vocabulary: builtins, functions and where each may be used.

Tables, not code: the checks read them, docs/language.md lists them, and a misspelt name
gets its suggestion from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Probe kinds (ast.ProbeSpec.provider) whose hits stop a thread of the target: only there do
# registers, arguments, the stack and thread-locals exist.
THREAD_KINDS = frozenset({"uprobe", "uretprobe", "usdt", "profile"})
ALL_KINDS = frozenset({"uprobe", "uretprobe", "usdt", "BEGIN", "END", "interval", "profile"})


@dataclass(frozen=True)
class BuiltinInfo:
    kind: str  # the value kind: 'int', 'str', 'stack'
    where: frozenset[str] = ALL_KINDS
    where_text: str = ""  # how a message names `where`


_THREAD_TEXT = "probes that stop a thread (uprobe, uretprobe, usdt, profile)"

BUILTINS: dict[str, BuiltinInfo] = {
    "pid": BuiltinInfo("int"),
    "tid": BuiltinInfo("int"),
    "ppid": BuiltinInfo("int"),
    "uid": BuiltinInfo("int"),
    "gid": BuiltinInfo("int"),
    "comm": BuiltinInfo("str"),
    "cpu": BuiltinInfo("int"),
    "nsecs": BuiltinInfo("int"),
    "elapsed": BuiltinInfo("int"),
    "cpid": BuiltinInfo("int"),
    "rand": BuiltinInfo("int"),
    "probe": BuiltinInfo("str"),
    "retval": BuiltinInfo("int", frozenset({"uretprobe"}), "uretprobe probes"),
    "func": BuiltinInfo("str", THREAD_KINDS, _THREAD_TEXT),
    "ustack": BuiltinInfo("stack", THREAD_KINDS, _THREAD_TEXT),
}

ARG_INFO = BuiltinInfo("int", frozenset({"uprobe", "usdt"}), "uprobe and usdt probes")
ARG_RE = re.compile(r"arg([0-9]|[1-9][0-9])")
MAX_ARG = 31

# Kernel-only vocabulary of bpftrace: named so the error can say why, not "unknown".
KERNEL_NAMES = frozenset(
    "kstack ksym kaddr kptr curtask cgroup cgroupid cgroup_path override bpf_get_current_task "
    "sarg0 sarg1 sarg2 sarg3 sarg4 sarg5 percpu_kaddr socket_cookie skboutput macaddr".split()
)

USTACK_MODES = frozenset({"bpftrace", "perf", "raw"})


@dataclass(frozen=True)
class FunctionInfo:
    """min/max arguments (max -1: any), the kind returned, and what else constrains it."""

    min_args: int
    max_args: int
    returns: str
    where: frozenset[str] = ALL_KINDS
    where_text: str = ""
    unsafe: bool = False
    aggregation: bool = False


_any = -1

FUNCTIONS: dict[str, FunctionInfo] = {
    "printf": FunctionInfo(1, _any, "void"),
    "print": FunctionInfo(1, 3, "void"),
    "str": FunctionInfo(1, 2, "str"),
    "buf": FunctionInfo(2, 2, "buf"),
    "strlen": FunctionInfo(1, 1, "int"),
    "strcontains": FunctionInfo(2, 2, "int"),
    "strncmp": FunctionInfo(3, 3, "int"),
    "usym": FunctionInfo(1, 1, "usym"),
    "uaddr": FunctionInfo(1, 1, "int"),
    "reg": FunctionInfo(1, 1, "int", THREAD_KINDS, _THREAD_TEXT),
    "time": FunctionInfo(0, 1, "void"),
    "strftime": FunctionInfo(2, 2, "str"),
    "join": FunctionInfo(1, 2, "void", THREAD_KINDS, _THREAD_TEXT),
    "cat": FunctionInfo(1, _any, "void"),
    "exit": FunctionInfo(0, 1, "void"),
    "system": FunctionInfo(1, _any, "void", unsafe=True),
    # A uprobe extension: delays the effects queued after it, never the target.
    "sleep": FunctionInfo(1, 1, "void"),
    "signal": FunctionInfo(1, 1, "void", THREAD_KINDS, _THREAD_TEXT, unsafe=True),
    "ustack": FunctionInfo(0, 2, "stack", THREAD_KINDS, _THREAD_TEXT),
    "count": FunctionInfo(0, 0, "count", aggregation=True),
    "sum": FunctionInfo(1, 1, "sum", aggregation=True),
    "avg": FunctionInfo(1, 1, "avg", aggregation=True),
    "min": FunctionInfo(1, 1, "min", aggregation=True),
    "max": FunctionInfo(1, 1, "max", aggregation=True),
    "stats": FunctionInfo(1, 1, "stats", aggregation=True),
    "hist": FunctionInfo(1, 2, "hist", aggregation=True),
    "lhist": FunctionInfo(4, 4, "lhist", aggregation=True),
    "delete": FunctionInfo(1, _any, "void"),
    "clear": FunctionInfo(1, 1, "void"),
    "zero": FunctionInfo(1, 1, "void"),
    "has_key": FunctionInfo(2, _any, "int"),
    "len": FunctionInfo(1, 1, "int"),
}

AGGREGATIONS = frozenset(n for n, f in FUNCTIONS.items() if f.aggregation)
# Aggregations whose value reads as one integer; the others only print.
SCALAR_AGGREGATIONS = frozenset({"count", "sum", "avg", "min", "max"})

# x86-64 registers reg() accepts: the names of the saved user_regs_struct.
REGISTERS = frozenset(
    "rax rbx rcx rdx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15 rip eflags "
    "orig_rax cs ss ds es fs gs fs_base gs_base ip sp bp ax bx cx dx si di flags".split()
)

SIGNALS = frozenset(
    "SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV "
    "SIGUSR2 SIGPIPE SIGALRM SIGTERM SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG "
    "SIGXCPU SIGXFSZ SIGVTALRM SIGPROF SIGWINCH SIGIO SIGSYS".split()
)

CONFIG_KEYS: dict[str, str] = {
    # name: 'int' (positive integer), 'bool', or 'a|b|c' (one of the words)
    "max_strlen": "int",
    "max_map_keys": "int",
    "max_loop_iterations": "int",
    "max_probes": "int",
    "max_ustack": "int",
    "print_maps_on_exit": "bool",
    "stack_mode": "bpftrace|perf|raw",
    "missing_probes": "error|warn|ignore",
}


def all_names() -> frozenset[str]:
    """Every identifier a misspelling could have meant."""
    return frozenset(BUILTINS) | frozenset(FUNCTIONS) | frozenset(f"arg{i}" for i in range(6))
