"""C++ names: the readable (demangled) form of a mangled symbol, and its name without the
parameter list, which is what `uprobe:prog:"ns::K::f"` matches (every overload).

Demangling is libstdc++'s own `abi::__cxa_demangle`, through the `cxxfilt` package: the
system's C++ runtime is the maintained authority on its own mangling scheme.
"""

from __future__ import annotations

import functools

_QUALIFIERS = (" const", " volatile", " &&", " &", " noexcept")


@functools.lru_cache(maxsize=65536)
def demangle(name: str) -> str:
    """`ns::K::f(int)` for `_ZN2ns1K1fEi`; any other name is returned unchanged."""
    if not name.startswith("_Z"):
        return name
    import cxxfilt  # loads libstdc++ through ctypes: only C++ names need it

    try:
        return cxxfilt.demangle(name, external_only=False)
    except (cxxfilt.InvalidName, UnicodeError, ValueError, OSError):
        return name


def without_params(demangled: str) -> str:
    """`ns::K::operator()` for `ns::K::operator()(int) const`, `ns::max<int>` for
    `int ns::max<int>(int, int)`: the name a user writes for every overload."""
    return _strip_return_type(_strip_params(demangled))


def _strip_return_type(text: str) -> str:
    """A template function's demangled name starts with its return type: drop it (the
    part before the last space outside <> and (), unless that space follows `operator`)."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        c = text[i]
        if c in ">)":
            depth += 1
        elif c in "<(":
            depth -= 1
        elif c == " " and depth == 0 and not text[:i].endswith("operator"):
            return text[i + 1:]
    return text


def _strip_params(demangled: str) -> str:
    text = demangled
    changed = True
    while changed:
        changed = False
        for q in _QUALIFIERS:
            if text.endswith(q):
                text = text[: -len(q)]
                changed = True
    if not text.endswith(")"):
        return demangled
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0:
                return text[:i] if i > 0 else demangled
    return demangled
