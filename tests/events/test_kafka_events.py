"""Events into the real Kafka broker (and reference data into the real Postgres).

Every test creates its own uniquely named topics (6 partitions) and only looks at what it produced.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from ecom.cli import main
from events.producer import EventProducer, LabelOutbox
from events.replay import ColumnMapping, replay_file
from events.simulator import SCENARIOS, ShopSimulator, SimConfig
from events.simulator.reference import write_reference
from kernel.db import connect
from kernel.errors import EcomError
from kernel.kafka import create_topics, delete_topics, partition_for_key, read_topic

pytestmark = pytest.mark.stack
PARTITIONS = 6


@pytest.fixture
def topics(stack):
    """Three fresh topics (transactions, labels, dead letters), deleted afterwards."""
    names = {k: f"test-events-{k}-{uuid.uuid4().hex[:8]}" for k in ("tx", "labels", "dlq")}
    create_topics(stack.kafka.bootstrap_servers, list(names.values()), PARTITIONS)
    yield names
    delete_topics(stack.kafka.bootstrap_servers, names.values())


def consume(settings, topic: str, expected: int | None = None, timeout_s: float = 30) -> list:
    """Every record of `topic` from the beginning (stops at `expected` records or when the topic is drained)."""
    return read_topic(settings.kafka.bootstrap_servers, topic, expected, timeout_s)


def test_produced_equals_consumed_and_keys_pick_the_partition(stack, topics):
    sim = ShopSimulator(SimConfig(seed=21, n_customers=800, n_products=120, n_merchants=20, days=20))
    events = [e for e, _ in sim.history()]
    with EventProducer(
        stack,
        topic=topics["tx"],
        labels_topic=topics["labels"],
        dead_letter_topic=topics["dlq"],
        validate="all",
    ) as producer:
        producer.send_events(events)
        producer.flush()
        assert producer.stats.events == len(events) and producer.stats.dead_letters == 0
    records = consume(stack, topics["tx"], expected=len(events))
    assert len(records) == len(events)
    assert sorted(orjson.loads(r.value)["transaction_id"] for r in records) == sorted(
        e["transaction_id"] for e in events
    )
    partitions_of = defaultdict(set)
    for r in records:
        value = orjson.loads(r.value)
        assert r.key.decode() == value["customer_id"]
        partitions_of[value["customer_id"]].add(r.partition)
    assert all(len(p) == 1 for p in partitions_of.values())
    assert all(p == {partition_for_key(c.encode(), PARTITIONS)} for c, p in partitions_of.items())
    assert (
        len({next(iter(p)) for p in partitions_of.values()}) == PARTITIONS
    )  # keys spread over all partitions
    # per customer, the order of the partition is the order of production (event time)
    by_customer = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_customer[r.key].append(orjson.loads(r.value)["event_time"])
    assert all(ts == sorted(ts) for ts in by_customer.values())


def test_a_full_local_queue_waits_for_room_and_delivers_every_record(stack, topics):
    sim = ShopSimulator(SimConfig(seed=22, n_customers=300, n_products=100, n_merchants=10, days=10))
    records = [r for chunk, _ in sim.history_chunks(as_json=True) for r in chunk]
    # a queue of 10 records: produce() refuses (BufferError) many times over and the producer must wait
    with EventProducer(
        stack,
        topic=topics["tx"],
        labels_topic=topics["labels"],
        dead_letter_topic=topics["dlq"],
        **{"queue.buffering.max.messages": 10},
    ) as producer:
        assert len(records) > 10 * 10
        assert producer.send_records(records) == len(records)
        producer.flush()
        assert producer.stats.failed == 0
    consumed = consume(stack, topics["tx"], expected=len(records))
    assert sorted(r.value for r in consumed) == sorted(v for _, v in records)
    assert all(r.partition == partition_for_key(r.key, PARTITIONS) for r in consumed)


def test_cli_history_same_seed_same_events_exact_count_and_delayed_labels(stack, topics, tmp_path: Path):
    start = (datetime.now(UTC) - timedelta(days=75)).date().isoformat()
    argv = [
        "generate",
        "--days",
        "60",
        "--start",
        start,
        "--customers",
        "1200",
        "--products",
        "150",
        "--merchants",
        "25",
        "--seed",
        "77",
        "--fraud-rate",
        "3",
        "--no-reference",
        "--quiet",
        "--json",
        "--topic",
        topics["tx"],
        "--labels-topic",
        topics["labels"],
        "--dead-letter-topic",
        topics["dlq"],
        "--shop-file",
        str(tmp_path / "shop.json"),
        "--outbox",
        str(tmp_path / "outbox.jsonl"),
    ]
    assert main(argv) == 0
    first = consume(stack, topics["tx"])
    assert len(first) > 2000
    labels = [orjson.loads(r.value) for r in consume(stack, topics["labels"])]
    # the history ended 15 days ago, so every chargeback of it (delays of days) has come due and been published
    event_time = {orjson.loads(r.value)["transaction_id"]: orjson.loads(r.value)["event_time"] for r in first}
    scenarios = Counter()
    for lab in labels:
        delay = datetime.fromisoformat(lab["reported_at"]) - datetime.fromisoformat(
            event_time[lab["transaction_id"]]
        )
        assert delay >= timedelta(days=1)
        scenarios[lab["fraud_scenario"]] += 1
    assert set(scenarios) == set(SCENARIOS)
    pending = (tmp_path / "outbox.jsonl").read_text().splitlines()
    assert all(datetime.fromisoformat(json.loads(x)["reported_at"]) > datetime.now(UTC) for x in pending)

    # same seed and window again, capped at exactly N events: the same first N events, byte for byte
    n = 1500
    again = f"test-events-again-{uuid.uuid4().hex[:8]}"
    create_topics(stack.kafka.bootstrap_servers, [again], PARTITIONS)
    try:
        argv2 = [a if a != topics["tx"] else again for a in argv] + ["--events", str(n)]
        assert main(argv2) == 0
        second = consume(stack, again, expected=n)
    finally:
        delete_topics(stack.kafka.bootstrap_servers, [again])
    assert len(second) == n
    first_values = sorted(r.value for r in first)
    second_values = sorted(r.value for r in second)
    first_by_id = {orjson.loads(v)["transaction_id"]: v for v in first_values}
    assert all(first_by_id[orjson.loads(v)["transaction_id"]] == v for v in second_values)


def test_cli_live_exact_event_count(stack, topics, tmp_path: Path):
    argv = [
        "generate",
        "--events",
        "3000",
        "--rate",
        "0",
        "--seed",
        "5",
        "--customers",
        "500",
        "--no-reference",
        "--quiet",
        "--topic",
        topics["tx"],
        "--labels-topic",
        topics["labels"],
        "--dead-letter-topic",
        topics["dlq"],
        "--shop-file",
        str(tmp_path / "shop.json"),
        "--outbox",
        str(tmp_path / "outbox.jsonl"),
    ]
    assert main(argv) == 0
    records = consume(stack, topics["tx"], expected=3000)
    assert len(records) == 3000
    times = [datetime.fromisoformat(orjson.loads(r.value)["event_time"]) for r in records]
    assert max(times) <= datetime.now(UTC) and min(times) > datetime.now(UTC) - timedelta(minutes=5)


def test_replay_csv_with_a_bad_row(stack, topics, tmp_path: Path):
    csv = tmp_path / "real.csv"
    csv.write_text(
        "tx,cust,term,amount,when,sku,is_fraud\n"
        "a1,u1,t1,10.00,2025-02-01T10:00:00Z,s1,0\n"
        "a2,u2,t1,not-a-number,2025-02-01T10:05:00Z,s2,0\n"
        "a3,u1,t2,250.40,2025-02-01T10:07:00Z,s3,1\n"
        "a4,u3,t2,5.5,2025-02-01T11:00:00Z,,0\n"
        f"a5,u4,t2,80,{(datetime.now(UTC) - timedelta(days=2)).isoformat()},s1,1\n"
    )
    mapping = ColumnMapping(
        {
            "transaction_id": "tx",
            "customer": "cust",
            "terminal": "term",
            "merchant": "term",
            "amount": "amount",
            "timestamp": "when",
            "product": "sku",
            "label": "is_fraud",
        }
    )
    report = replay_file(
        csv,
        mapping,
        topic=topics["tx"],
        labels_topic=topics["labels"],
        dead_letter_topic=topics["dlq"],
        settings=stack,
        outbox=LabelOutbox(tmp_path / "outbox.jsonl"),
    )
    # a5's chargeback is reported 30 days after it, in the future: it waits in the outbox
    assert report.delivered == 4 and report.labels == 1 and report.labels_pending == 1
    assert [line for line, _ in report.bad_rows] == [3]
    delivered = [orjson.loads(r.value) for r in consume(stack, topics["tx"], expected=4)]
    assert sorted(e["transaction_id"] for e in delivered) == ["a1", "a3", "a4", "a5"]
    dead = [orjson.loads(r.value) for r in consume(stack, topics["dlq"], expected=1)]
    assert len(dead) == 1
    assert (
        dead[0]["line"] == 3 and dead[0]["raw"]["amount"] == "not-a-number" and "amount" in dead[0]["reason"]
    )
    labels = [orjson.loads(r.value) for r in consume(stack, topics["labels"], expected=1)]
    assert [lab["transaction_id"] for lab in labels] == ["a3"]
    assert "a5" in (tmp_path / "outbox.jsonl").read_text()


def test_cli_replay_reports_bad_lines(stack, topics, tmp_path: Path, capsys):
    csv = tmp_path / "r.csv"
    csv.write_text("c,a,t\nu1,1.5,2025-01-01 00:00:00\nu2,,2025-01-01 00:01:00\nu3,2,2025-01-01,extra\n")
    code = main(
        [
            "replay",
            "--outbox",
            str(tmp_path / "outbox.jsonl"),
            str(csv),
            "--customer-col",
            "c",
            "--amount-col",
            "a",
            "--timestamp-col",
            "t",
            "--quiet",
            "--topic",
            topics["tx"],
            "--labels-topic",
            topics["labels"],
            "--dead-letter-topic",
            topics["dlq"],
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert f"{csv}:3: amount" in err
    assert f"{csv}:4: expected 3 fields, found 4" in err
    dead = [orjson.loads(r.value) for r in consume(stack, topics["dlq"], expected=2)]
    assert sorted(d["line"] for d in dead) == [3, 4]
    assert len(consume(stack, topics["tx"], expected=1)) == 1


def test_replay_of_an_unsorted_file_spills_sorts_and_delivers_the_row_by_row_events(
    stack, topics, tmp_path: Path, monkeypatch
):
    """A shuffled Parquet file with a small memory budget: sorted out of core under the state folder, every
    good row delivered once as the row-by-row replay would build it, in event-time order per partition,
    bad rows dead-lettered with raw row, reason and line, chargebacks published."""
    import hashlib

    import pandas as pd

    import events.replay
    from events.replay import convert_rows

    monkeypatch.setattr(events.replay, "PARQUET_BATCH_ROWS", 150)  # chunks smaller than the budget
    rng = __import__("random").Random(11)
    rows = [
        {
            "cust": f"u{rng.randrange(40)}",
            "term": f"t{rng.randrange(9)}",
            "amt": f"{rng.uniform(1, 300):.2f}",
            "ts": f"2025-0{rng.randrange(1, 9)}-1{rng.randrange(10)} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00",
            "fraud": rng.choice(["0"] * 30 + ["1"]),
        }
        for _ in range(1500)
    ]
    for i in (10, 700, 1400):
        rows[i]["amt"] = "n/a"
    path = tmp_path / "shuffled.parquet"
    pd.DataFrame(rows).to_parquet(path)
    mapping = ColumnMapping(
        {"customer": "cust", "terminal": "term", "amount": "amt", "timestamp": "ts", "label": "fraud"}
    )
    report = replay_file(
        path,
        mapping,
        topic=topics["tx"],
        labels_topic=topics["labels"],
        dead_letter_topic=topics["dlq"],
        settings=stack,
        chunk_rows=200,
    )
    assert report.in_order is False and report.spilled_runs >= 4
    assert [line for line, _ in report.bad_rows] == [11, 701, 1401]
    key = hashlib.blake2b(path.read_bytes(), digest_size=5).hexdigest()
    df = pd.read_parquet(path).astype(object)
    expected, _ = convert_rows(df, mapping, 1, key, label_delay_days=30)
    records = consume(stack, topics["tx"], expected=len(expected))
    delivered = {orjson.loads(r.value)["transaction_id"]: orjson.loads(r.value) for r in records}
    assert len(records) == len(delivered) == report.delivered == len(expected) == 1497
    assert delivered == {ev["transaction_id"]: ev for _, ev, _ in expected}
    by_partition = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(orjson.loads(r.value)["event_time"])
    assert all(times == sorted(times) for times in by_partition.values())
    dead = sorted(
        (orjson.loads(r.value) for r in consume(stack, topics["dlq"], expected=3)), key=lambda d: d["line"]
    )
    assert [(d["line"], d["raw"]["amt"]) for d in dead] == [(11, "n/a"), (701, "n/a"), (1401, "n/a")]
    assert all("amount" in d["reason"] and d["source"] == "replay:shuffled.parquet" for d in dead)
    labels = consume(stack, topics["labels"], expected=report.labels)
    assert len(labels) == report.labels == sum(1 for _, _, lab in expected if lab is not None) > 0
    assert not any((stack.state_dir / "tmp").glob("replay-*"))  # spilled runs removed


def test_reference_data_upserts_and_only_real_changes_move_updated_at(stack):
    ns = f"t{uuid.uuid4().hex[:6]}_"
    sim = ShopSimulator(
        SimConfig(seed=4, n_customers=50, n_products=40, n_merchants=5, days=10, namespace=ns)
    )
    try:
        first = write_reference(sim, stack)
        assert first == {"customers": 50, "products": 40, "merchants": 5, "terminals": len(sim.terminals)}
        assert write_reference(sim, stack) == {"customers": 0, "products": 0, "merchants": 0, "terminals": 0}
        stayer = sim.customers.index[sim.customers.moves_at.isna()][0]  # a mover's home follows the move
        cid = sim.customers.customer_id[stayer]
        with connect(stack) as conn:
            before = conn.execute(
                "SELECT updated_at FROM reference.customers WHERE customer_id = %s", [cid]
            ).fetchone()
        sim.customers.loc[stayer, "home_city"] = "Somewhere New"
        assert write_reference(sim, stack)["customers"] == 1
        with connect(stack) as conn:
            row = conn.execute(
                "SELECT home_city, updated_at FROM reference.customers WHERE customer_id = %s", [cid]
            ).fetchone()
            n = conn.execute(
                "SELECT count(*) FROM reference.products WHERE product_id LIKE %s", [ns + "%"]
            ).fetchone()
        assert row[0] == "Somewhere New" and row[1] > before[0]
        assert n[0] == 40
    finally:  # the reference tables are shared: remove this test's own rows
        with connect(stack) as conn:
            for table, key in (
                ("customers", "customer_id"),
                ("products", "product_id"),
                ("merchants", "merchant_id"),
                ("terminals", "terminal_id"),
            ):
                conn.execute(f"DELETE FROM reference.{table} WHERE {key} LIKE %s", [ns + "%"])
            conn.commit()


def test_unreachable_broker_is_one_clear_error(stack):
    bad = dataclasses.replace(stack, kafka=dataclasses.replace(stack.kafka, bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(EcomError) as err:
        EventProducer(bad)
    assert "127.0.0.1:1" in str(err.value) and "ecom up" in str(err.value)
