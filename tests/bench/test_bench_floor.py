"""`ecom bench stream --floor` on real Kafka + Spark: every produced event comes back through each shape,
and the probe leaves the session's configuration, Kafka and the state folder as it found them."""

from __future__ import annotations

import time

import pytest

from bench.floor import PROBE_CONF, floor_probe

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _leftovers(stack) -> tuple[set[str], set[str]]:
    """The probe's topics in Kafka and its work folders beside the checkpoints."""
    from kernel.kafka import topic_names

    topics = {t for t in topic_names(stack.kafka.bootstrap_servers) if t.startswith("bench_floor_")}
    folders = {p.name for p in stack.spark.checkpoint_dir.parent.glob("bench_floor_*")}
    return topics, folders


def test_floor_probe_sees_every_event_through_the_first_and_the_full_shape(stack, spark):
    conf_before = {k: spark.conf.get(k, None) for k in [*PROBE_CONF, "spark.sql.shuffle.partitions"]}
    leftovers_before = _leftovers(stack)

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
    # its three topics (one per latency run, one for throughput) and its checkpoints are gone (topic
    # deletion reaches the metadata a moment after the broker acknowledged it)
    deadline = time.time() + 15
    while _leftovers(stack) != leftovers_before and time.time() < deadline:
        time.sleep(0.5)
    assert _leftovers(stack) == leftovers_before
