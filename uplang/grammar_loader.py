"""The Lark parser for grammar/uplang.lark, loaded as package data.

Lark's own way for grammars inside installed packages (`Lark.open_from_package`, which
reads through pkgutil and so works from a wheel or a zip too). The grammar ships inside
the `uplang` package as `uplang/grammar/uplang.lark` (pyproject maps the top-level
grammar/ directory there); in a source checkout it sits next to uplang/, so the loader
looks in `grammar/` first and in `../grammar/` second.
"""

from __future__ import annotations

import functools

from lark import Lark

GRAMMAR_FILE = "uplang.lark"
SEARCH_PATHS = ("grammar", "../grammar")  # installed package, source checkout


@functools.cache
def lalr_parser() -> Lark:
    """Building the LALR tables takes a while, so every caller in a process shares one."""
    return Lark.open_from_package(
        "uplang",
        GRAMMAR_FILE,
        SEARCH_PATHS,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
    )
