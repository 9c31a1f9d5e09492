"""The speed layer's pure pieces, without services: parsing/validation on static frames, quarantine rows,
master rows, the Spark configuration. (The cold-start fill is ml.features.fill_from_baselines, tested in
tests/ml/test_features.py; scoring with it in test_scoring_unit.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from kernel.errors import EcomError
from tests.streaming.support import make_events


def _kafka_frame(spark, payloads: list[bytes]):
    now = datetime.now(UTC)
    return spark.createDataFrame(
        [(p, "topic_x", 0, i, now) for i, p in enumerate(payloads)],
        "value binary, topic string, partition int, offset long, timestamp timestamp",
    )


def test_parse_keeps_valid_events_and_names_what_is_wrong_with_the_others(spark):
    from streaming.transforms import parse_transactions

    good = make_events(1)[0]
    cases = {
        "ok": json.dumps(good).encode(),
        "amount: must be > 0": json.dumps({**good, "amount": -3}).encode(),
        "unknown field(s) not in the contract: promo": json.dumps({**good, "promo": "x"}).encode(),
        "amount: missing or wrong type": json.dumps({**good, "amount": "twelve"}).encode(),
        "event_time: not an ISO 8601 date-time": json.dumps({**good, "event_time": "yesterday"}).encode(),
        "currency: not one of": json.dumps({**good, "currency": "XXX"}).encode(),
        "line_items: fewer than 1 items": json.dumps({**good, "line_items": []}).encode(),
        "payload is not valid UTF-8": b"\xc3\x28{}",
        "payload is not a JSON object": b"[1, 2]",
        "empty payload": b"",
        "customer_id: not a JSON string": json.dumps({**good, "customer_id": {"id": 1}}).encode(),
        "merchant_id: not a JSON string": json.dumps({**good, "merchant_id": 12345}).encode(),
        "device_id: not a JSON string": json.dumps({**good, "device_id": True}).encode(),
        "a string holds a NUL character": json.dumps({**good, "ip_city": "Ber\u0000lin"}).encode(),
        "product_id: not a JSON string": json.dumps(
            {**good, "line_items": [{**good["line_items"][0], "product_id": 7}]}
        ).encode(),
    }
    rows = parse_transactions(_kafka_frame(spark, list(cases.values()))).orderBy("kafka_offset").collect()
    assert len(rows) == len(cases)
    for expected, row in zip(cases, rows, strict=True):
        if expected == "ok":
            assert row.reject_reason is None
            assert row.transaction_id == good["transaction_id"]
            assert json.loads(row.line_items) == good["line_items"]
            assert row.event_ts is not None
        else:
            assert row.reject_reason is not None and row.reject_reason.startswith(expected), (expected, row)
            assert row.raw_payload is not None


def test_landing_maps_events_to_master_columns(spark):
    from streaming.landing.master import MASTER_COLUMNS
    from streaming.landing.query import master_transactions
    from streaming.transforms import kafka_envelope

    ev = make_events(2)
    df = master_transactions(kafka_envelope(_kafka_frame(spark, [json.dumps(e).encode() for e in ev])))
    assert df.columns == [*MASTER_COLUMNS, "raw_payload", "reject_reason"]
    rows = df.orderBy("kafka_offset").collect()
    assert [r.transaction_id for r in rows] == [e["transaction_id"] for e in ev]
    assert all(r.reject_reason is None for r in rows)


def test_quarantine_rows_keep_raw_bytes_and_text_only_when_utf8():
    from streaming.sink import quarantine_rows

    rows = quarantine_rows(
        "stream", [("t", 0, 1, b"\xff\xfe", "bad utf8"), ("t", 0, 2, b"{oops", "not json")]
    )
    assert rows[0] == ("stream", "t", 0, 1, b"\xff\xfe", None, "bad utf8")
    assert rows[1] == ("stream", "t", 0, 2, b"{oops", "{oops", "not json")


def test_master_row_follows_the_contract_order():
    from streaming.landing.master import MASTER_COLUMNS, master_row

    ev = make_events(1)[0]
    row = master_row(ev, kafka_offset=7)
    assert len(row) == len(MASTER_COLUMNS)
    named = dict(zip(MASTER_COLUMNS, row, strict=True))
    assert named["transaction_id"] == ev["transaction_id"]
    assert json.loads(named["line_items"]) == ev["line_items"]
    assert named["event_time"] == datetime.fromisoformat(ev["event_time"])
    assert named["kafka_timestamp"] == named["event_time"] and named["kafka_offset"] == 7


def test_spark_conf_uses_local_jars_and_utc(settings):
    from kernel.spark import spark_conf

    conf = spark_conf(settings)
    jars = conf["spark.jars"].split(",")
    assert any("spark-sql-kafka" in j for j in jars) and all(j.startswith("/") for j in jars)
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.master"] == settings.spark.master
    # the JVM's temp files (RocksDB's native library, 15 MB a start) stay under the state dir, not /tmp
    tmp = settings.state_dir / "spark-tmp"
    assert f'-Djava.io.tmpdir="{tmp}"' in conf["spark.driver.extraJavaOptions"]
    assert conf["spark.local.dir"] == str(tmp)


def test_missing_connector_jar_is_one_clear_error(settings, tmp_path):
    import dataclasses

    from kernel.spark import spark_jars

    broken = dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, jars_dir=tmp_path))
    with pytest.raises(EcomError, match="Kafka connector jar is missing"):
        spark_jars(broken)


def test_speed_rows_count_items_in_the_jvm_like_the_trainer(spark):
    """The stream drops line_items before the keyed state and carries n_items counted in the JVM; the
    count must be ml.features' own (sum of quantities), and derive_features must give the same features."""
    from ml.features import CONTEXT_COLUMNS, _n_items, derive_features
    from streaming.transforms import SPEED_DROPPED, speed_transactions

    ev = make_events(12)
    ev[0]["line_items"] = [
        {**ev[0]["line_items"][0], "quantity": 7},
        {**ev[0]["line_items"][0], "quantity": 2},
    ]
    rows = (
        speed_transactions(_kafka_frame(spark, [json.dumps(e).encode() for e in ev]))
        .orderBy("kafka_offset")
        .collect()
    )
    expected = _n_items(pd.Series([e["line_items"] for e in ev]))
    assert expected[0] == 9.0
    assert [r.n_items for r in rows] == list(expected)
    assert all(r.reject_reason is None for r in rows)
    assert not set(SPEED_DROPPED) & set(rows[0].asDict())

    ctx = pd.DataFrame(np.nan, index=range(len(ev)), columns=CONTEXT_COLUMNS)
    with_items = pd.concat([pd.DataFrame(ev), ctx], axis=1)
    with_count = with_items.drop(columns=["line_items"]).assign(n_items=[r.n_items for r in rows])
    pd.testing.assert_frame_equal(derive_features(with_items), derive_features(with_count))


def test_a_nul_character_is_quarantined_not_a_poison_pill(spark):
    """Postgres text cannot store U+0000: an event carrying it would fail its batch's insert on every
    retry. Both validators reject it; a backslash followed by the text "u0000" is an ordinary string."""
    from events.contract import validation_errors
    from streaming.transforms import parse_transactions

    good = make_events(1)[0]
    nul = {
        **good,
        "customer_id": "C\u00001",
        "line_items": [{**good["line_items"][0], "product_id": "P\u0000"}],
    }
    text = {**good, "ip_city": "C:\\u0000dir"}  # backslash, then the letters u0000
    assert validation_errors(nul) == [
        "customer_id: holds a NUL character (\\u0000), which Postgres text cannot store",
        "line_items.0.product_id: holds a NUL character (\\u0000), which Postgres text cannot store",
    ]
    assert validation_errors(text) == []
    rows = (
        parse_transactions(_kafka_frame(spark, [json.dumps(nul).encode(), json.dumps(text).encode()]))
        .orderBy("kafka_offset")
        .collect()
    )
    assert rows[0].reject_reason.startswith("a string holds a NUL character")
    assert rows[1].reject_reason is None and rows[1].ip_city == "C:\\u0000dir"


def test_an_event_from_the_future_is_quarantined_and_never_moves_the_watermark(spark):
    """A producer with a wrong clock: an event stamped days after Kafka received it would advance the
    event-time watermark and make the keyed state forget every customer. It is quarantined instead."""
    from datetime import timedelta

    from pyspark.sql import functions as F

    from streaming.transforms import parse_transactions, with_event_watermark

    now = datetime.now(UTC)
    ev = make_events(3)
    ev[0]["event_time"] = (now + timedelta(days=3)).isoformat()  # clock three days ahead
    ev[1]["event_time"] = (now + timedelta(hours=2)).isoformat()  # within the 24 h tolerance
    frame = spark.createDataFrame(
        [(json.dumps(e).encode(), "topic_x", 0, i, now) for i, e in enumerate(ev)],
        "value binary, topic string, partition int, offset long, timestamp timestamp",
    )
    parsed = parse_transactions(frame)
    rows = parsed.orderBy("kafka_offset").collect()
    assert rows[0].reject_reason.startswith("event_time: more than 24 hours after Kafka received")
    assert rows[1].reject_reason is None and rows[2].reject_reason is None
    marks = (
        with_event_watermark(parsed, "10 minutes")
        .orderBy("kafka_offset")
        .select(
            F.col("watermark_ts").cast("long").alias("w"), F.col("kafka_timestamp").cast("long").alias("k")
        )
        .collect()
    )
    assert marks[0].w == marks[0].k  # the quarantined row counts with its produce time
