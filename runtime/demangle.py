"""C++ symbol names as people read them (`ns::Class::method(int)`), via cxxfilt."""

from __future__ import annotations

import functools

try:
    import cxxfilt
except ImportError:  # pragma: no cover - a declared dependency
    cxxfilt = None


@functools.lru_cache(maxsize=65536)
def demangle(name: str) -> str:
    """The demangled form of an Itanium-ABI name; any other name unchanged."""
    if cxxfilt is None or not name.startswith("_Z"):
        return name
    try:
        return cxxfilt.demangle(name, external_only=False)
    except (cxxfilt.InvalidName, UnicodeError, OSError):
        return name
