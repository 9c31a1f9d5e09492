"""Shared helpers for benchmark commands: machine description and percentile summaries."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence

import psutil


def machine_info() -> dict[str, object]:
    """What ran the benchmark, recorded beside every figure."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles {"p50": ..., ...}; None when there are no values."""
    if not values:
        return {f"p{q}": None for q in qs}
    ordered = sorted(values)
    out = {}
    for q in qs:
        rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
        out[f"p{q}"] = float(ordered[rank])
    return out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
