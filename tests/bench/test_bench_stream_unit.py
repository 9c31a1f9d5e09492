"""`ecom bench stream`'s pure parts: which engines it measures and how runs become one figure."""

from __future__ import annotations

import pytest

from bench.stream import _engines, _summary
from kernel.errors import EcomError


def test_engines_default_to_the_settings_and_are_checked():
    assert _engines(None, "jvm") == ["jvm"]
    assert _engines("jvm,python", "jvm") == ["jvm", "python"]
    assert _engines(" python , jvm ", "jvm") == ["python", "jvm"]
    for bad in ("scala", "jvm,jvm", ",", "jvm,rust"):
        with pytest.raises(EcomError, match="--engines"):
            _engines(bad, "jvm")


def _run(p95: float, sustained: float, ceiling: float, lost: int = 0) -> dict:
    return {
        "sustained_events_per_s": sustained,
        "offered_events_per_s": 1000.0,
        "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 1.1},
        "lost": lost,
        "duplicated": 0,
        "ceiling_events_per_s": ceiling,
        "batch_ms": {"trigger_ms": p95 / 3},
    }


def test_summary_takes_medians_and_the_worst_loss():
    s = _summary([_run(900, 8000, 10000), _run(1500, 6000, 12000, lost=2), _run(1200, 9000, 11000)])
    assert s["latency_ms"]["p95"] == 1200
    assert s["sustained_events_per_s"] == 8000
    assert s["ceiling_events_per_s"] == 11000
    assert s["sustained_to_ceiling"] == pytest.approx(8000 / 11000)
    assert s["lost"] == 2
    assert s["batch_ms"]["trigger_ms"] == 400


def test_orders_default_to_the_settings_and_name_the_variants():
    from bench.stream import _orders, _variant

    assert _orders(None, "arrival") == ["arrival"]
    assert _orders("arrival,event_time", "arrival") == ["arrival", "event_time"]
    for bad in ("sorted", "arrival,arrival", " , "):
        with pytest.raises(EcomError, match="--orders takes distinct names"):
            _orders(bad, "arrival")
    assert _variant("jvm", "arrival", ["arrival"]) == "jvm"
    assert _variant("jvm", "event_time", ["arrival", "event_time"]) == "jvm/event_time"
