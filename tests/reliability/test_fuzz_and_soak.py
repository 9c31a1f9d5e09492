"""10,000 fuzzed malformed events among valid ones (every one quarantined with its raw bytes and a reason, every
valid one scored, the query alive throughout), and a short soak at a high rate with latency and memory recorded."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections import Counter

import pytest

from kernel.db import connect
from tests.reliability.support import (
    PacedProducer,
    ecom_cmd,
    fresh_events,
    fuzz_payloads,
    is_loopback,
    listening_addresses,
    producer,
    send_events,
    speed_rows,
    start,
    stop,
    tail,
    tree_rss_mb,
    wait_for,
)
from tests.streaming.support import create_topic, unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]

N_MALFORMED = 10_000
N_VALID = 2_000


def test_ten_thousand_fuzzed_malformed_events_are_all_quarantined_and_the_stream_lives(
    stack, spark, model_name, tmp_path
):
    from streaming.speed.query import StreamConfig, start_speed_query

    topic = unique("t_rel_fuzz")
    create_topic(stack, topic, partitions=3)
    valid = fresh_events(N_VALID, seed=41)
    bad = fuzz_payloads(valid, N_MALFORMED, seed=42)
    ids = [e["transaction_id"] for e in valid]
    # valid and malformed interleaved in one shuffled stream of records
    records = [(e["customer_id"].encode(), json.dumps(e).encode()) for e in valid]
    records += [(f"fuzz{i}".encode(), payload) for i, (_, payload) in enumerate(bad)]
    random.Random(43).shuffle(records)
    cfg = StreamConfig.from_settings(
        stack,
        topic=topic,
        query_name=unique("q_rel_fuzz"),
        checkpoint=tmp_path / "fuzz",
        trigger="1 second",
        model_name=model_name,
        max_offsets_per_trigger=3000,
    )
    query = start_speed_query(spark, cfg, stack)
    try:
        prod = producer(stack)
        for key, value in records:
            prod.send(topic, key=key, value=value)
        prod.flush()
        prod.close()

        def quarantined() -> int:
            with connect() as conn:
                return conn.execute(
                    "SELECT count(*) FROM quarantine.events WHERE source = 'stream' AND kafka_topic = %s",
                    (topic,),
                ).fetchone()[0]

        assert wait_for(
            lambda: speed_rows(ids)[0] >= N_VALID and quarantined() >= N_MALFORMED, timeout=300
        ), (
            f"scored {speed_rows(ids)}, quarantined {quarantined()}, active={query.isActive} {query.exception()}"
        )
        time.sleep(2)  # another trigger: nothing more may appear
        assert query.isActive, f"the stream died: {query.exception()}"
    finally:
        query.stop()
    assert speed_rows(ids) == (N_VALID, N_VALID)
    with connect() as conn:
        rows = conn.execute(
            "SELECT reason, raw_payload FROM quarantine.events WHERE source = 'stream' AND kafka_topic = %s",
            (topic,),
        ).fetchall()
    assert len(rows) == N_MALFORMED
    assert all(reason and reason.strip() for reason, _ in rows)
    # the raw bytes are kept as sent (a tombstone has no bytes)
    assert Counter(bytes(p) for _, p in rows) == Counter(p or b"" for _, p in bad)
    reasons = Counter(r.split(":")[0] for r, _ in rows)
    print(f"\nquarantine reasons (first words): {dict(reasons.most_common())}")
    assert {
        "payload is not valid UTF-8",
        "empty payload",
        "payload is not a JSON object",
        "schema_version",
    } <= set(reasons)


SOAK_SECONDS = int(os.environ.get("ECOM_SOAK_SECONDS", "60"))
SOAK_RATE = int(os.environ.get("ECOM_SOAK_RATE", "1000"))


def test_soak_at_a_high_rate_records_latency_and_memory_and_loses_nothing(stack, model_name, tmp_path):
    topic, q = unique("t_rel_soak"), unique("q_rel_soak")
    create_topic(stack, topic, partitions=6)
    log = tmp_path / "soak.log"
    proc = start(
        ecom_cmd(
            "stream",
            "--topic",
            topic,
            "--checkpoint",
            str(tmp_path / "soak"),
            "--query-name",
            q,
            "--model-name",
            model_name,
            "--trigger",
            "1 second",
        ),
        log,
    )
    n = SOAK_SECONDS * SOAK_RATE
    events = fresh_events(n, seed=51, spacing_ms=1000 / SOAK_RATE)
    ids = [e["transaction_id"] for e in events]
    rss: list[float] = []
    try:
        # warm-up: the first batch of a fresh query pays for Python workers, state stores and the model;
        # the soak measures the steady state after it
        warm = fresh_events(200, seed=50)
        prod = producer(stack)
        send_events(prod, topic, warm)
        prod.close()
        assert wait_for(
            lambda: speed_rows([e["transaction_id"] for e in warm])[0] == 200 or proc.poll() is not None, 600
        ), tail(log)
        assert proc.poll() is None, tail(log)
        with connect() as conn:
            warm_batches = conn.execute(
                "SELECT coalesce(max(batch_id), -1) FROM ops.stream_batches WHERE query_name = %s", (q,)
            ).fetchone()[0]
        feeder = PacedProducer(stack, topic, events, SOAK_RATE)
        t0 = time.monotonic()
        feeder.start()
        while feeder.is_alive():
            rss.append(tree_rss_mb(proc.pid))
            time.sleep(2)
        produce_s = time.monotonic() - t0
        assert feeder.error is None
        assert wait_for(lambda: speed_rows(ids)[0] >= n, timeout=300, every=2), tail(log)
        drain_s = time.monotonic() - t0
        rss.append(tree_rss_mb(proc.pid))
        assert proc.poll() is None, tail(log)
        # the stream's own listeners (Spark driver RPC, block manager, Python workers) stay on loopback
        listening = listening_addresses(proc.pid)
        assert listening and all(is_loopback(ip) for ip, _ in listening), listening
    finally:
        stop(proc)
    assert speed_rows(ids) == (n, n)
    with connect() as conn:
        batches = conn.execute(
            "SELECT rows_written, duration_ms, latency_p50_ms, latency_p95_ms, latency_p99_ms "
            "FROM ops.stream_batches WHERE query_name = %s AND rows_written > 0 AND batch_id > %s ORDER BY batch_id",
            (q, warm_batches),
        ).fetchall()
    p95s = [b[3] for b in batches]
    weighted_p50 = sum(b[0] * b[2] for b in batches) / sum(b[0] for b in batches)
    print(
        f"\nsoak: {n} events at {SOAK_RATE}/s target, produced in {produce_s:.1f} s, all committed after "
        f"{drain_s:.1f} s ({n / drain_s:.0f} events/s end to end); {len(batches)} batches, "
        f"rows/batch median {statistics.median(b[0] for b in batches):.0f}; "
        f"latency p50 (row-weighted) {weighted_p50:.0f} ms, batch p95 median {statistics.median(p95s):.0f} ms, "
        f"max p95 {max(p95s):.0f} ms, max p99 {max(b[4] for b in batches):.0f} ms; "
        f"stream tree RSS min/median/max {min(rss):.0f}/{statistics.median(rss):.0f}/{max(rss):.0f} MB "
        f"({len(rss)} samples)"
    )


def test_string_fields_holding_another_json_type_are_quarantined(stack, spark, model_name, tmp_path):
    from events.contract import validate_transaction
    from streaming.speed.query import StreamConfig, start_speed_query
    from tests.reliability.support import STRING_FIELD_WRONG_TYPES

    topic = unique("t_rel_types")
    create_topic(stack, topic, partitions=1)
    base = fresh_events(len(STRING_FIELD_WRONG_TYPES), seed=44)
    bad = [{**e, field: value} for e, (field, value) in zip(base, STRING_FIELD_WRONG_TYPES, strict=True)]
    assert all(validate_transaction(e) for e in bad)
    prod = producer(stack)
    for e in bad:
        prod.send(topic, key=b"k", value=json.dumps(e).encode())
    prod.flush()
    prod.close()
    cfg = StreamConfig.from_settings(
        stack,
        topic=topic,
        query_name=unique("q_rel_types"),
        checkpoint=tmp_path / "types",
        available_now=True,
        model_name=model_name,
    )
    start_speed_query(spark, cfg, stack).awaitTermination()
    ids = [e["transaction_id"] for e in bad]
    with connect() as conn:
        quarantined = conn.execute(
            "SELECT count(*) FROM quarantine.events WHERE source = 'stream' AND kafka_topic = %s", (topic,)
        ).fetchone()[0]
    assert (speed_rows(ids)[0], quarantined) == (0, len(bad))
