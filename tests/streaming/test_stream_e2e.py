"""The speed layer and the batch landing on real Kafka + Spark + Postgres + MLflow.

Every test uses its own topics, checkpoints, query names and registered model, and asserts only on the
ids it produced (other rooms share the same broker and database).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from kernel.db import connect
from kernel.errors import EcomError
from tests.streaming.support import create_topic, make_events, produce, unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MALFORMED = [
    b"\xff\xfe\xfd not utf-8",
    b"{this is not json",
    b"[1, 2, 3]",
    json.dumps({"schema_version": 1, "transaction_id": "only-an-id"}).encode(),
]


def _count(sql: str, params) -> int:
    with connect() as conn:
        return conn.execute(sql, params).fetchone()[0]


def _speed_rows(ids: list[str]) -> tuple[int, int]:
    with connect() as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT transaction_id) FROM speed.scored_transactions "
            "WHERE transaction_id = ANY(%s)",
            (ids,),
        ).fetchone()


def _wait(predicate, timeout: float, every: float = 1.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def test_exactly_once_into_speed_and_master_with_quarantine(stack, spark, test_model, tmp_path):
    from streaming.landing.query import LandingConfig, start_landing_query
    from streaming.speed.query import StreamConfig, start_speed_query

    model_name, versions = test_model
    topic, labels = unique("t_speed"), unique("t_labels")
    create_topic(stack, topic)
    create_topic(stack, labels, partitions=1)
    events = make_events(300, seed=3)
    # the last event is a blatant outlier for its customer: huge amount, new device, another continent
    events[-1] = {
        **events[-1],
        "customer_id": events[0]["customer_id"],
        "amount": 90000.0,
        "device_id": "never-seen",
        "ip_country": "BR",
        "ip_city": "Sao Paulo",
        "ip_lat": -23.55,
        "ip_lon": -46.63,
        "line_items": [{"product_id": "P999", "quantity": 40, "unit_price": 2250.0}],
    }
    ids = [e["transaction_id"] for e in events]
    produce(stack, topic, events, MALFORMED)
    chargebacks = [
        {
            "schema_version": 1,
            "transaction_id": e["transaction_id"],
            "customer_id": e["customer_id"],
            "reported_at": e["event_time"],
            "fraud_scenario": "card_testing",
            "amount": e["amount"],
        }
        for e in events[:5]
    ]
    produce(stack, labels, [], [json.dumps(c).encode() for c in chargebacks] + [b'{"schema_version": 1}'])

    cfg = StreamConfig.from_settings(
        stack,
        topic=topic,
        query_name=unique("q_speed"),
        checkpoint=tmp_path / "speed",
        available_now=True,
        model_name=model_name,
        max_offsets_per_trigger=120,
    )
    session_partitions = spark.conf.get("spark.sql.shuffle.partitions")
    start_speed_query(spark, cfg, stack).awaitTermination()
    assert _speed_rows(ids) == (300, 300)
    # the keyed state got its own partition count (recorded in the checkpoint), the session kept its own
    first_offsets = (tmp_path / "speed" / "offsets" / "0").read_text().splitlines()
    recorded = json.loads(first_offsets[1])["conf"]["spark.sql.shuffle.partitions"]
    assert recorded == str(cfg.state_partitions) == str(stack.spark.state_partitions)
    assert spark.conf.get("spark.sql.shuffle.partitions") == session_partitions
    # ... and its bucket count; a restart asking for another is refused before anything runs
    layout = json.loads((tmp_path / "speed" / "ecom-state.json").read_text())
    assert layout == {"state_buckets": stack.spark.state_buckets, "state_engine": stack.spark.state_engine}
    with pytest.raises(EcomError, match="keys its state by"):
        start_speed_query(spark, replace(cfg, state_buckets=stack.spark.state_buckets + 1), stack)
    assert (
        _count(
            "SELECT count(DISTINCT model_version) FROM speed.scored_transactions WHERE transaction_id = ANY(%s) "
            "AND model_version = %s",
            (ids, versions[0]),
        )
        == 1
    )
    # several micro-batches (maxOffsetsPerTrigger), each with its marker and metrics row
    with connect() as conn:
        batches = conn.execute(
            "SELECT rows_in, rows_written, rows_quarantined, latency_p95_ms, kafka_lag FROM ops.stream_batches "
            "WHERE query_name = %s ORDER BY batch_id",
            (cfg.query_name,),
        ).fetchall()
        quarantined = conn.execute(
            "SELECT reason, raw_payload FROM quarantine.events WHERE source = 'stream' AND kafka_topic = %s",
            (topic,),
        ).fetchall()
        alerts = conn.execute(
            "SELECT a.reasons, a.fraud_score >= a.threshold FROM speed.fraud_alerts a "
            "WHERE a.transaction_id = ANY(%s)",
            (ids,),
        ).fetchall()
    assert len(batches) >= 3
    assert sum(b[0] for b in batches) == 304 and sum(b[1] for b in batches) == 300
    assert sum(b[2] for b in batches) == 4
    assert all(b[3] is not None and b[3] >= 0 for b in batches)
    assert batches[-1][4] == 0  # caught up
    reasons = {r for r, _ in quarantined}
    assert len(quarantined) == 4
    assert "payload is not valid UTF-8" in reasons and "payload is not a JSON object" in reasons
    assert any(r.startswith("customer_id: missing") for r in reasons)
    assert {bytes(p) for _, p in quarantined} == set(MALFORMED)
    # alerts: every alerted row is above the threshold and explains itself in words
    assert _count(
        "SELECT count(*) FROM speed.scored_transactions WHERE transaction_id = ANY(%s) AND is_alert", (ids,)
    ) == len(alerts)
    for reasons_json, above in alerts:
        assert above and reasons_json and all(r["text"] for r in reasons_json)
    with connect() as conn:
        outlier = conn.execute(
            "SELECT reasons FROM speed.fraud_alerts WHERE transaction_id = %s", (ids[-1],)
        ).fetchone()
    assert outlier is not None, "the blatant outlier was not alerted"
    assert any("amount" in r["text"] or "device" in r["text"] for r in outlier[0]), outlier

    # a batch replayed after a crash between COMMIT in Postgres and Spark's commit log: drop the last
    # commit-log entry, restart from the same checkpoint -> Spark recomputes it, the marker makes it a no-op
    commits = sorted(
        (tmp_path / "speed" / "commits").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1
    )
    last = [p for p in commits if p.name.isdigit()][-1]
    last.unlink()
    (last.parent / f".{last.name}.crc").unlink(missing_ok=True)
    start_speed_query(spark, cfg, stack).awaitTermination()
    assert _speed_rows(ids) == (300, 300)

    # the batch landing: same topic into the master dataset, chargebacks from the labels topic
    land = LandingConfig.from_settings(
        stack,
        topic_transactions=topic,
        topic_labels=labels,
        query_name=unique("q_land"),
        checkpoint=tmp_path / "land",
    )
    start_landing_query(spark, land, stack).awaitTermination()
    start_landing_query(spark, land, stack).awaitTermination()  # a second run finds nothing new
    assert _count("SELECT count(*) FROM master.transactions WHERE transaction_id = ANY(%s)", (ids,)) == 300
    assert (
        _count(
            "SELECT count(*) FROM master.chargebacks WHERE transaction_id = ANY(%s)",
            ([c["transaction_id"] for c in chargebacks],),
        )
        == 5
    )
    assert (
        _count(
            "SELECT count(*) FROM quarantine.events WHERE source = 'landing' AND kafka_topic IN (%s, %s)",
            (topic, labels),
        )
        == 5
    )
    with connect() as conn:
        row = conn.execute(
            "SELECT m.amount, m.line_items, m.kafka_topic FROM master.transactions m WHERE transaction_id = %s",
            (ids[0],),
        ).fetchone()
    assert float(row[0]) == events[0]["amount"] and row[1] == events[0]["line_items"] and row[2] == topic


def _stream_cmd(topic: str, checkpoint: Path, query: str, model: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ecom.cli",
        "stream",
        "--topic",
        topic,
        "--checkpoint",
        str(checkpoint),
        "--query-name",
        query,
        "--model-name",
        model,
        "--max-offsets",
        "150",
        "--trigger",
        "1 second",
    ]


def test_kill_minus_9_mid_run_then_restart_loses_and_duplicates_nothing(stack, test_model, tmp_path):
    model_name, _ = test_model
    topic, query = unique("t_kill"), unique("q_kill")
    create_topic(stack, topic)
    events = make_events(800, seed=5)
    ids = [e["transaction_id"] for e in events]
    produce(stack, topic, events)
    log_path = tmp_path / "stream.log"
    cmd = _stream_cmd(topic, tmp_path / "ckpt", query, model_name)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        # kill while it is mid-run: some batches committed, not all
        assert _wait(lambda: _speed_rows(ids)[0] >= 100, timeout=400), log_path.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = _speed_rows(ids)[0]
    assert done_before < 800, "the stream finished before it could be killed; produce more events"
    with open(log_path, "a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        assert _wait(lambda: _speed_rows(ids)[0] >= 800, timeout=600), log_path.read_text()[-3000:]
        time.sleep(3)  # one more trigger: nothing new may appear
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _speed_rows(ids) == (800, 800)
    # the markers account for every row exactly once, across both runs
    assert (
        _count(
            "SELECT coalesce(sum(rows_written), 0) FROM speed.batch_commits WHERE query_name = %s", (query,)
        )
        == 800
    )


def test_moving_the_champion_alias_switches_the_model_without_restart(stack, spark, test_model, tmp_path):
    from ml import registry
    from streaming.speed.query import StreamConfig, start_speed_query
    from streaming.speed.scoring import ChampionCache

    model_name, (v1, v2) = test_model
    registry.set_alias(v1, stack, model_name)
    topic = unique("t_swap")
    create_topic(stack, topic)
    cfg = StreamConfig.from_settings(
        stack,
        topic=topic,
        query_name=unique("q_swap"),
        checkpoint=tmp_path / "swap",
        trigger="1 second",
        model_name=model_name,
    )
    champions = ChampionCache(spark, stack, model_name, poll_interval_s=0.0)
    query = start_speed_query(spark, cfg, stack, champions=champions)
    try:
        first = make_events(50, seed=8)
        produce(stack, topic, first)
        ids1 = [e["transaction_id"] for e in first]
        assert _wait(lambda: _speed_rows(ids1)[0] == 50, timeout=300)
        registry.set_alias(v2, stack, model_name)
        second = make_events(50, seed=9)
        produce(stack, topic, second)
        ids2 = [e["transaction_id"] for e in second]
        assert _wait(lambda: _speed_rows(ids2)[0] == 50, timeout=300)
        run_id = query.runId
        assert query.isActive and query.runId == run_id
    finally:
        query.stop()
        registry.set_alias(v1, stack, model_name)
    with connect() as conn:
        v_first = conn.execute(
            "SELECT DISTINCT model_version FROM speed.scored_transactions WHERE transaction_id = ANY(%s)",
            (ids1,),
        ).fetchall()
        v_second = conn.execute(
            "SELECT DISTINCT model_version FROM speed.scored_transactions WHERE transaction_id = ANY(%s)",
            (ids2,),
        ).fetchall()
    assert v_first == [(v1,)]
    assert v_second == [(v2,)]
