"""`ecom bench stream --floor` on real Kafka + Spark: every produced event comes back through each shape,
and the probe leaves the session's configuration as it found it."""

from __future__ import annotations

import pytest

from streaming.bench_floor import PROBE_CONF, floor_probe

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_floor_probe_sees_every_event_through_the_first_and_the_full_shape(stack, spark):
    conf_before = {k: spark.conf.get(k, None) for k in [*PROBE_CONF, "spark.sql.shuffle.partitions"]}

    result = floor_probe(spark, stack, rate=200.0, seconds=2.0, events=4_000, shapes=("jvm", "speed_shape"))

    assert result["throughput_events"] == 4_000
    assert set(result["shapes"]) == {"jvm", "speed_shape"}
    for shape, fig in result["shapes"].items():
        assert fig["error"] is None, shape
        assert fig["produced"] == 400, shape
        # exactly the measured events (the warm-up's are counted apart), each once
        assert fig["received"] == fig["produced"], shape
        lat = fig["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] < 120_000, shape
        assert fig["batch_ms_median"] > 0, shape
        tput = fig["throughput"]
        assert tput["error"] is None and tput["rows"] == 4_000, shape
        assert tput["events_per_s"] > 0, shape
    assert {k: spark.conf.get(k, None) for k in conf_before} == conf_before
