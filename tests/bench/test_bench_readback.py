"""The real-time probe's read-back on real Kafka: only the measured namespace's output records count."""

from __future__ import annotations

import json

import pytest

from bench.stream import _read_back
from kernel.kafka import consumer as kafka_consumer
from tests.streaming.support import create_topic, produce, unique

pytestmark = pytest.mark.stack


def test_read_back_keeps_the_namespace_and_stops_when_all_came_back(stack):
    topic = unique("rt_out")
    create_topic(stack, topic, partitions=2)
    records = [
        json.dumps({"transaction_id": f"{ns}-{i}", "produced_us": 1_000_000}).encode()
        for ns in ("wAAA", "rAAA")
        for i in range(20)
    ]
    produce(stack, topic, [], records)
    consumer = kafka_consumer(stack.kafka.bootstrap_servers)
    consumer.subscribe([topic])
    try:
        lat = _read_back(consumer, "rAAA", expected=20, timeout_s=20.0)
        # the warm-up namespace was read past, not counted; nothing more arrives for the next call
        assert len(lat) == 20
        assert all(v > 0 for v in lat)  # broker time (now) - 1 s after the epoch, in ms
        assert _read_back(consumer, "rAAA", expected=1, timeout_s=1.0) == []
    finally:
        consumer.close()
