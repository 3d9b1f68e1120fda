"""The layers point one way (docs/architecture.md "Layers"), checked on the import statements.

The language (uplang/, without the application modules) imports no runtime module; the
runtime reads only the language's data contracts: the plan, the AST and the vocabulary.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What the runtime may import from uplang: data only.
CONTRACTS = ("uplang.ast", "uplang.plan", "uplang.vocab")
# The application sits above both layers and may import either.
APPLICATION = ("uplang/cli.py", "uplang/app/")


def imports(path: Path) -> set[str]:
    """Every module an import statement in the file names, lazy imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_the_runtime_reads_only_the_language_contracts() -> None:
    bad = {
        str(path.relative_to(REPO)): name
        for path in sources("runtime")
        for name in imports(path)
        if name.split(".")[0] == "uplang" and name != "uplang"
        and not any(name == c or name.startswith(c + ".") for c in CONTRACTS)
    }
    assert bad == {}


def test_the_language_never_imports_the_runtime() -> None:
    bad = {
        str(path.relative_to(REPO)): name
        for path in sources("uplang")
        if not str(path.relative_to(REPO)).startswith(APPLICATION)
        for name in imports(path)
        if name.split(".")[0] == "runtime"
    }
    assert bad == {}


def test_the_vocabulary_imports_nothing_but_itself() -> None:
    for path in sources("uplang/vocab"):
        others = {n for n in imports(path)
                  if n.startswith("uplang") and not n.startswith("uplang.vocab")}
        assert others == set(), path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle_in_the_language_or_the_application() -> None:
    """cli.py and repl.py imported each other; lazy imports count: a circle is a circle."""
    modules = {module_name(p): p for p in sources("uplang")}
    graph = {
        name: {m for m in imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    circles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append(" -> ".join((*trail, start)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*trail, nxt)))
    assert circles == []
