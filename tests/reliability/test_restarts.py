"""The services under the stream go away and come back: a private Kafka broker stopped and restarted
mid-stream (the query resumes and catches up), a private Postgres restarted mid-stream (the sink retries and
nothing is lost). Private services, never the shared stack's: others work on it at the same time."""

from __future__ import annotations

import time

import pytest

from ecom.db import connect
from tests.reliability.support import (
    PacedProducer,
    fresh_events,
    private_service,
    producer,
    send_events,
    speed_rows,
    wait_for,
)
from tests.speed.support import create_topic, unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _query(spark, settings, model_name, topic, tmp_path, tag, max_offsets=200):
    from streaming.speed.query import StreamConfig, start_speed_query

    cfg = StreamConfig.from_settings(
        settings,
        topic=topic,
        query_name=unique(f"q_rel_{tag}"),
        checkpoint=tmp_path / tag,
        trigger="1 second",
        model_name=model_name,
        max_offsets_per_trigger=max_offsets,
    )
    return cfg, start_speed_query(spark, cfg, settings)


def test_kafka_broker_stopped_and_restarted_mid_stream_resumes_and_catches_up(
    stack, spark, model_name, tmp_path, monkeypatch
):
    with private_service("kafka", stack, monkeypatch, "kafka") as (s, broker):
        topic = unique("t_rel_kafka")
        create_topic(s, topic, partitions=3)
        first, second = fresh_events(1500, seed=21), fresh_events(1500, seed=22)
        ids = [e["transaction_id"] for e in first + second]
        prod = producer(s)
        send_events(prod, topic, first)
        prod.close()
        cfg, query = _query(spark, s, model_name, topic, tmp_path, "kafka")
        try:
            assert wait_for(lambda: speed_rows(ids)[0] >= 200, timeout=180), query.lastProgress
            broker.stop()
            down_at = time.monotonic()
            time.sleep(8)  # several triggers against a dead broker
            assert query.isActive, f"the query died while the broker was down: {query.exception()}"
            broker.start()
            assert wait_for(broker.healthy, 120, 0.5)
            print(
                f"\nbroker down for {time.monotonic() - down_at:.1f} s; rows before restart "
                f"{speed_rows(ids)[0]}"
            )
            prod = producer(s)
            send_events(prod, topic, second)
            prod.close()
            assert wait_for(lambda: speed_rows(ids)[0] >= 3000, timeout=240), (
                f"not caught up: {speed_rows(ids)} active={query.isActive} exc={query.exception()}"
            )
            assert query.isActive
        finally:
            query.stop()
    assert speed_rows(ids) == (3000, 3000)


def test_postgres_restarted_mid_stream_the_sink_retries_and_loses_nothing(
    stack, spark, model_name, tmp_path, monkeypatch
):
    with private_service("postgres", stack, monkeypatch, "pg") as (s, pg):
        topic = unique("t_rel_pg")
        create_topic(s, topic, partitions=3)
        events = fresh_events(3000, seed=31)
        ids = [e["transaction_id"] for e in events]
        feeder = PacedProducer(s, topic, events, rate=150)
        cfg, query = _query(spark, s, model_name, topic, tmp_path, "pg", max_offsets=100)
        try:
            feeder.start()
            assert wait_for(lambda: speed_rows(ids, s)[0] >= 200, timeout=180), query.lastProgress
            pg.stop()  # pg_ctl stop -m fast: every connection is cut
            time.sleep(4)
            assert query.isActive, f"the query died while Postgres was down: {query.exception()}"
            pg.start()
            assert wait_for(pg.healthy, 60, 0.5)
            feeder.join(timeout=120)
            assert feeder.error is None
            assert wait_for(lambda: speed_rows(ids, s)[0] >= 3000, timeout=240), (
                f"not caught up: {speed_rows(ids, s)} active={query.isActive} exc={query.exception()}"
            )
            assert query.isActive
        finally:
            query.stop()
        assert speed_rows(ids, s) == (3000, 3000)
        with connect(s) as conn:
            written = conn.execute(
                "SELECT coalesce(sum(rows_written), 0) FROM speed.batch_commits WHERE query_name = %s",
                (cfg.query_name,),
            ).fetchone()[0]
        assert written == 3000
