"""What the CPU offers for int8 and fp16 kernels, read once and recorded with every recipe."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

INTERESTING = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "asimddp")


@lru_cache(maxsize=1)
def cpu_flags() -> tuple[str, ...]:
    """The int8-relevant features of this CPU (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    found: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            found.update(value.split())
    return tuple(flag for flag in INTERESTING if flag in found)


def has_vnni() -> bool:
    """Fast int8 dot products: without them, int8 weights need ``reduce_range`` (7 bits)."""
    flags = cpu_flags()
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp"))


def describe() -> dict[str, object]:
    return {"machine": platform.machine(), "flags": list(cpu_flags()), "vnni": has_vnni()}
