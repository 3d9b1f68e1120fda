"""The Lark parser for grammar/uplang.lark, loaded from the installed package.

The grammar ships as package data of `uplang.grammar` (pyproject maps the top-level grammar/
directory onto it), so importlib.resources finds it in an installed wheel. A source checkout
has no `uplang.grammar` package (the mapping exists only at install time), so there the file
is read from the checkout's grammar/ directory next to uplang/.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark

GRAMMAR_FILE = "uplang.lark"


def grammar_text() -> str:
    try:
        package = resources.files("uplang.grammar")
    except (ModuleNotFoundError, TypeError):
        return (Path(__file__).resolve().parent.parent / "grammar" / GRAMMAR_FILE).read_text(
            encoding="utf-8"
        )
    return package.joinpath(GRAMMAR_FILE).read_text(encoding="utf-8")


@functools.cache
def lalr_parser() -> Lark:
    """Building the LALR tables takes a while, so every caller in a process shares one."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
    )
