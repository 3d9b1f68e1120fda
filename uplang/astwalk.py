"""Generic traversal of uplang.ast: every node is a frozen dataclass, so one walker fits all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any


def children(node: Any) -> Iterator[Any]:
    """The AST nodes directly inside `node`, in source order (spans and types excluded)."""
    for f in dataclasses.fields(node):
        if f.name in ("span", "type"):
            continue
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield value
        elif isinstance(value, tuple):
            yield from (v for v in value if dataclasses.is_dataclass(v))


def walk(node: Any) -> Iterator[Any]:
    """`node` and everything below it, depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))


def rewrite(node: Any, fn: Callable[[Any], Any]) -> Any:
    """Rebuild bottom-up, replacing each node by fn(node); unchanged subtrees stay shared."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(node):
        if f.name in ("span", "type"):
            continue
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            new = rewrite(value, fn)
        elif isinstance(value, tuple) and any(dataclasses.is_dataclass(v) for v in value):
            new = tuple(rewrite(v, fn) if dataclasses.is_dataclass(v) else v for v in value)
        else:
            continue
        if new is not value:
            changes[f.name] = new
    if changes:
        node = dataclasses.replace(node, **changes)
    return fn(node)
