"""Every word of the vocabulary (uplang.vocab) has its implementation in the runtime.

Adding a builtin or a function touches its table row and its implementation; this is the
test that says which implementation is missing.
"""

from __future__ import annotations

import pytest
from ptrace.binding.linux_struct import user_regs_struct

from runtime.aggregations import new_state
from runtime.handlers.codegen import ClauseGen, Shared
from runtime.maps import AGG_KINDS
from uplang import ast
from uplang.vocab.calls import AGGREGATIONS, BUILTINS, FUNCTIONS
from uplang.vocab.registers import REGISTERS, USER_REGS_FIELDS


def test_register_fields_are_the_ptrace_register_set() -> None:
    assert tuple(name for name, _ in user_regs_struct._fields_) == USER_REGS_FIELDS
    assert set(REGISTERS.values()) <= set(USER_REGS_FIELDS)


@pytest.mark.parametrize("word", [w.name for w in FUNCTIONS if not w.aggregation])
def test_every_function_has_a_code_generator(word: str) -> None:
    assert callable(getattr(ClauseGen, f"f_{word}", None)), word


@pytest.mark.parametrize("word", [w.name for w in BUILTINS])
def test_every_builtin_compiles(word: str) -> None:
    gen = ClauseGen(Shared({}, {}, ()), "uprobe")
    src, _ = gen.e_Builtin(ast.Builtin(word))
    assert src


@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_every_aggregation_has_a_state(name: str) -> None:
    assert name in AGG_KINDS
    state = new_state(name, (0, 10, 1) if name == "lhist" else None)
    state.add(3)
