"""The vocabulary tables (uplang.vocab) are consistent with themselves and the grammar."""

from __future__ import annotations

import re
from pathlib import Path

from uplang.vocab import calls, ctypes, probetypes, registers

GRAMMAR = Path(__file__).resolve().parents[2] / "grammar" / "uplang.lark"


def test_the_grammar_lists_exactly_the_type_words() -> None:
    text = GRAMMAR.read_text(encoding="utf-8")
    rule = re.search(r"!_type_word:(.*?)\n!", text, re.S)
    assert rule is not None
    assert sorted(re.findall(r'"([^"]+)"', rule.group(1))) == list(ctypes.TYPE_WORDS)


def test_every_spelling_names_a_basic_type() -> None:
    assert set(ctypes.SPELLINGS.values()) <= set(ctypes.BY_NAME)
    assert {"unsigned long long int", "uint8_t", "_Bool", "pid_t"} <= set(ctypes.SPELLINGS)


def test_provider_spellings_are_unambiguous() -> None:
    spellings = [s for t in probetypes.PROBE_TYPES for s in (t.name, *t.aliases)]
    assert len(spellings) == len(set(spellings))
    assert not set(spellings) & probetypes.KERNEL_PROVIDERS


def test_bpftrace_register_names_are_all_there() -> None:
    bpftrace = ("r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp "
                "ss").split()
    assert set(bpftrace) <= set(registers.REGISTERS)


def test_argument_kinds_make_arities() -> None:
    assert calls.FUNCTION_BY_NAME["printf"].max_args == -1
    assert calls.FUNCTION_BY_NAME["ustack"].min_args == 0
    assert calls.FUNCTION_BY_NAME["ustack"].max_args == 2
    assert calls.FUNCTION_BY_NAME["lhist"].min_args == 4
    assert calls.AGGREGATIONS == {w.name for w in calls.FUNCTIONS if w.aggregation}
    for word in (*calls.BUILTINS, *calls.FUNCTIONS):
        if word.reads_regs:
            assert word.needs_thread, word.name  # registers exist only in a stopped thread
