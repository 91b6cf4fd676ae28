"""What machine a benchmark ran on: CPU model, SIMD flags, cores, load average (no third-party imports)."""
from __future__ import annotations

import os
import platform
import re

__all__ = ["cpu_model", "cpu_simd_flags", "describe_cpu"]

_SIMD = re.compile(r"^(sse\d.*|ssse3|avx.*|amx.*|fma|f16c|bmi\d|neon|asimd.*|sve.*)$")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else platform.processor()."""
    m = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.M)
    return m.group(1).strip() if m else (platform.processor() or platform.machine() or "unknown CPU")


def cpu_simd_flags() -> list:
    """The SIMD-related flags of the first CPU (sse*, avx*, amx*, fma, ...), sorted."""
    m = re.search(r"^(flags|Features)\s*:\s*(.+)$", _cpuinfo(), re.M)
    return sorted(f for f in (m.group(2).split() if m else []) if _SIMD.match(f))


def describe_cpu() -> str:
    """One paragraph: model, cores visible to this process, SIMD flags, load average."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " load average (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return (f"CPU: {cpu_model()}; {cores} core(s) visible of {os.cpu_count()};{load}\n"
            f"CPU flags: {' '.join(cpu_simd_flags()) or 'unknown'}")
