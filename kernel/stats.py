"""Summary statistics every room shares: nearest-rank percentiles (stream metrics, benchmarks) and medians.

One definition, so a p95 in `speed.pipeline_metrics` and a p95 printed by `ecom bench` mean the same thing."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles {"p50": ..., ...}; None when there are no values."""
    if len(values) == 0:
        return {f"p{q}": None for q in qs}
    ordered = sorted(values)
    out = {}
    for q in qs:
        rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
        out[f"p{q}"] = float(ordered[rank])
    return out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
