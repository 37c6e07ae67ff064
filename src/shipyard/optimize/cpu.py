"""What the CPU offers for int8 kernels: read once, or pinned by ``SHIPYARD_CPU_FEATURES``, and
recorded with every recipe.

The one thing the recipes depend on is whether the CPU has fast int8 dot products (VNNI on x86,
the dot-product extension on ARM). Without them ONNX Runtime's u8 x s8 kernels add pairs of
products in 16 bits, which can saturate, so int8 weights keep 7 bits (``reduce_range``).

``SHIPYARD_CPU_FEATURES`` (``Settings.cpu_features``) makes the optimizer choose as it would on
another CPU: a profile name (``avx2``, ``avx512-vnni``, ``amx``, ``arm-dotprod``), a
comma-separated list of the flags below, or ``none``. The candidates still run on this CPU; only
the choice of recipes and what the report records follow the pinned features.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInputError

INTERESTING = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "asimddp")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})
OVERRIDE = "SHIPYARD_CPU_FEATURES"

# The CPUs a recipe choice is tested against, by the flags Linux shows for them.
PROFILES: dict[str, tuple[str, ...]] = {
    "avx2": ("avx2",),  # e.g. AMD Zen 2/3, Intel Haswell to Skylake client
    "avx512-vnni": ("avx2", "avx512f", "avx512_vnni"),  # Intel Cascade Lake, AMD Zen 4
    "amx": ("avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_tile"),  # Sapphire Rapids
    "arm-dotprod": ("asimddp",),  # ARMv8.2+: Graviton 2/3, Ampere Altra, Apple M
}


@dataclass(frozen=True)
class CpuFeatures:
    """The int8-relevant features the optimizer chooses recipes for."""

    machine: str
    flags: tuple[str, ...]
    pinned: str | None = None  # the SHIPYARD_CPU_FEATURES value, when it set the flags

    @property
    def vnni(self) -> bool:
        """Fast int8 dot products: without them, int8 weights need ``reduce_range`` (7 bits)."""
        return any(flag in VNNI_FLAGS for flag in self.flags)

    def summary(self) -> str:
        """e.g. ``avx2, no VNNI`` or ``avx2, avx512f, avx512_vnni (pinned: avx512-vnni)``."""
        text = ", ".join(self.flags) or "no int8 extensions"
        if not self.vnni:
            text += ", no VNNI"
        if self.pinned is not None:
            text += f" (pinned by {OVERRIDE}={self.pinned})"
        return text

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "machine": self.machine,
            "flags": list(self.flags),
            "vnni": self.vnni,
        }
        if self.pinned is not None:
            record["pinned"] = self.pinned
        return record


def features(pinned: str | None = None) -> CpuFeatures:
    """This CPU's features, or those ``pinned`` names (a profile, flags, or ``none``)."""
    if pinned is None:
        return CpuFeatures(platform.machine(), detected_flags())
    return CpuFeatures(platform.machine(), parse(pinned), pinned)


def parse(value: str) -> tuple[str, ...]:
    """The flags a SHIPYARD_CPU_FEATURES value stands for, in INTERESTING's order."""
    text = value.strip().lower()
    if text in PROFILES:
        return PROFILES[text]
    if text == "none":
        return ()
    named = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [flag for flag in named if flag not in INTERESTING]
    if unknown or not named:
        raise InvalidInputError(
            f"{OVERRIDE}={value!r} is not a CPU profile or a list of flags: "
            f"{'unknown ' + ', '.join(repr(f) for f in unknown) if unknown else 'empty'}; "
            f"profiles are {', '.join(PROFILES)} (or none), flags {', '.join(INTERESTING)}"
        )
    return tuple(flag for flag in INTERESTING if flag in named)


@lru_cache(maxsize=1)
def detected_flags() -> tuple[str, ...]:
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
