"""Which integer instructions this CPU has, and so whether INT8 weights need a reduced range.

On x86 without VNNI, onnxruntime's u8 x s8 kernels use ``vpmaddubsw``, whose 16-bit intermediate
sums saturate with full-range 8-bit weights; 7-bit weights (``reduce_range``) avoid that at a small
accuracy cost. VNNI (AVX512-VNNI or AVX-VNNI) accumulates in 32 bits, and ARM's dot-product
instructions have no such limit, so there the full range is used.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

_X86_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512f", "avx2")


@dataclass(frozen=True)
class IntegerISA:
    arch: str
    features: tuple[str, ...]
    reduce_range: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"arch": self.arch, "features": list(self.features), "reduce_range": self.reduce_range,
                "reason": self.reason}


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def detect(flags: set[str] | None = None, machine: str | None = None) -> IntegerISA:
    """The reduce_range decision for this machine (``flags``/``machine`` are for tests)."""
    machine = (machine or platform.machine()).lower()
    if machine in ("arm64", "aarch64"):
        return IntegerISA(machine, (), False, "ARM: no 16-bit saturation in the int8 dot-product path")
    flags = _cpu_flags() if flags is None else flags
    present = tuple(f for f in _X86_FLAGS if f in flags)
    vnni = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    if vnni:
        return IntegerISA(machine, present, False, f"{vnni[0]} present: 32-bit accumulation, full 8-bit range")
    if not flags:
        return IntegerISA(machine, present, True, "CPU features unknown: 7-bit weights to be safe")
    return IntegerISA(machine, present, True, "no VNNI: 7-bit weights avoid vpmaddubsw saturation")
