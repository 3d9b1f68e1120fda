"""Builds the test programs (C, C++, assembly) with gcc at test time, cached per session."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROGRAMS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Builder:
    """Compiles tests/programs/<name> into out_dir; the output name hashes source and flags
    so that different flag sets of one source coexist and nothing is rebuilt twice."""

    out_dir: Path

    def build(self, source: str, *flags: str, shared: bool = False, compiler: str = "") -> Path:
        src = PROGRAMS / source
        text = src.read_bytes()
        key = hashlib.sha256(text + repr((flags, shared, compiler)).encode()).hexdigest()[:12]
        suffix = ".so" if shared else ""
        out = self.out_dir / f"{src.stem}-{key}{suffix}"
        if out.exists():
            return out
        cc = compiler or ("g++" if src.suffix in (".cc", ".cpp") else "gcc")
        cmd = [cc, "-g", *flags, "-o", str(out) + ".tmp", str(src)]
        if shared:
            cmd[1:1] = ["-shared", "-fPIC"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        Path(str(out) + ".tmp").rename(out)
        return out
