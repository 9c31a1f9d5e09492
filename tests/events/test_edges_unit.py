"""Pure tests of the edges: replay row conversion, partitioning, label outbox, CLI errors (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ecom.cli import main
from events.contract import validate_chargeback, validate_transaction
from events.producer import PRODUCER_CONFIG, LabelOutbox, dead_letter_record
from events.replay import ColumnMapping, convert_rows, read_table
from kernel.errors import EcomError
from kernel.kafka import murmur2, partition_for_key

MAPPING = ColumnMapping(
    {
        "customer": "cust",
        "merchant": "shop",
        "amount": "amt",
        "timestamp": "ts",
        "product": "sku",
        "label": "fraud",
    }
)


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype(str)


def test_replay_rows_become_contract_events_and_bad_rows_keep_their_line_numbers():
    df = _frame(
        [
            {
                "cust": "c1",
                "shop": "m1",
                "amt": "12.50",
                "ts": "2025-05-01 10:00:00",
                "sku": "p1",
                "fraud": "0",
            },
            {
                "cust": "c2",
                "shop": "m1",
                "amt": "abc",
                "ts": "2025-05-01 10:01:00",
                "sku": "p2",
                "fraud": "0",
            },
            {"cust": "c3", "shop": "m2", "amt": "99", "ts": "2025-05-01 09:00:00", "sku": "p3", "fraud": "1"},
            {"cust": "", "shop": "m2", "amt": "5", "ts": "2025-05-01 11:00:00", "sku": "p3", "fraud": "0"},
            {"cust": "c4", "shop": "m2", "amt": "-3", "ts": "2025-05-01 11:00:00", "sku": "p3", "fraud": "0"},
            {"cust": "c5", "shop": "m2", "amt": "7", "ts": "yesterday-ish", "sku": "p3", "fraud": "0"},
        ]
    )
    good, bad = convert_rows(df, MAPPING, lines=2, file_key="k", label_delay_days=30)
    assert [line for line, _, _ in good] == [4, 2]  # sorted by event time
    assert all(validate_transaction(ev) == [] for _, ev, _ in good)
    by_line = {line: reason for line, _, reason in bad}
    assert set(by_line) == {3, 5, 6, 7}
    assert "amount" in by_line[3] and "customer" in by_line[5] and "amount" in by_line[6]
    assert "timestamp" in by_line[7]
    raw_of_3 = next(raw for line, raw, _ in bad if line == 3)
    assert raw_of_3["amt"] == "abc"  # the raw row travels with the reason
    label = next(lab for line, _, lab in good if line == 4)
    assert validate_chargeback(label) == []
    assert datetime.fromisoformat(label["reported_at"]) - datetime.fromisoformat(
        good[0][1]["event_time"]
    ) == (timedelta(days=30))
    assert next(lab for line, _, lab in good if line == 2) is None


def test_replay_ids_are_stable_and_naive_times_use_the_mapping_timezone():
    df = _frame(
        [{"cust": "c1", "shop": "m1", "amt": "1", "ts": "2025-05-01 10:00:00", "sku": "p", "fraud": "0"}]
    )
    berlin = ColumnMapping(dict(MAPPING.columns), timezone="Europe/Berlin")
    (_, ev, _), *_ = convert_rows(df, berlin, 2, "abc", 30)[0]
    assert ev["transaction_id"] == "replay-abc-2"
    assert datetime.fromisoformat(ev["event_time"]) == datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


def test_mapping_yaml_and_missing_columns_are_reported(tmp_path: Path):
    (tmp_path / "m.yaml").write_text(
        "customer: cust\namount: amt\ntimestamp: ts\ndefaults:\n  currency: EUR\n"
    )
    mapping = ColumnMapping.from_yaml(tmp_path / "m.yaml")
    assert mapping.defaults["currency"] == "EUR"
    with pytest.raises(EcomError, match="no column"):
        mapping.check(["cust", "amt"], "f.csv")
    (tmp_path / "bad.yaml").write_text("customer: cust\nwho: x\n")
    with pytest.raises(EcomError, match="unknown keys"):
        ColumnMapping.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(EcomError, match="no column"):
        ColumnMapping({"customer": "c"}).check(["c"], "f.csv")


def test_read_table_errors_are_one_clear_line(tmp_path: Path):
    with pytest.raises(EcomError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(EcomError, match="cannot read"):
        read_table(tmp_path / "x.parquet")
    pd.DataFrame({"a": [1.5, None]}).to_parquet(tmp_path / "ok.parquet")
    df, lines, malformed = read_table(tmp_path / "ok.parquet")
    assert lines == [1, 2] and malformed == [] and df.a.iloc[1] is None
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EcomError, match="empty"):
        read_table(tmp_path / "empty.csv")


def test_csv_lines_with_the_wrong_field_count_are_reported_not_fatal(tmp_path: Path):
    (tmp_path / "r.csv").write_text('a,b\n1,2\n3,4,5\n\n"multi\nline",6\n7\n8,9\n')
    df, lines, malformed = read_table(tmp_path / "r.csv")
    assert df.values.tolist() == [["1", "2"], ["multi\nline", "6"], ["8", "9"]]
    assert lines == [2, 5, 8]
    assert [(line, reason) for line, _, reason in malformed] == [
        (3, "expected 2 fields, found 3"),
        (7, "expected 2 fields, found 1"),
    ]
    assert malformed[0][1] == {"fields": ["3", "4", "5"]}


def test_murmur2_is_kafkas():
    # the Java client's own vectors (org.apache.kafka.common.utils.UtilsTest.testMurmur2), as signed ints
    java = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, expected in java.items():
        assert murmur2(key) == expected & 0xFFFFFFFF, key
    # the partition: positive part of the hash modulo the partition count, as the Java default partitioner
    assert [partition_for_key(k, 6) for k in (b"C000001", b"C019999", b"abc", b"21")] == [1, 5, 3, 0]


def test_the_producer_partitions_keys_as_kafkas_default_partitioner():
    # librdkafka's own default (consistent_random) hashes keys with CRC32: a customer would land on another
    # partition than the one Spark and the Java client pick; the broker test checks where records land
    assert PRODUCER_CONFIG["partitioner"] == "murmur2_random"
    assert PRODUCER_CONFIG["enable.idempotence"] is True and PRODUCER_CONFIG["acks"] == "all"


def test_label_outbox_releases_due_labels_and_keeps_the_rest(tmp_path: Path):
    box = LabelOutbox(tmp_path / "out.jsonl")
    now = datetime(2026, 5, 1, tzinfo=UTC)
    for days in (-3, -1, 2, 5):
        box.add({"transaction_id": f"t{days}", "reported_at": (now + timedelta(days=days)).isoformat()})
    due, pending = box.release_due(now)
    assert [x["transaction_id"] for x in due] == ["t-3", "t-1"] and pending == 2
    again = LabelOutbox(tmp_path / "out.jsonl")
    due, pending = again.release_due(now + timedelta(days=3))
    assert [x["transaction_id"] for x in due] == ["t2"] and pending == 1


def test_dead_letter_record_keeps_raw_and_reason():
    rec = dead_letter_record({"amt": "abc"}, "amount: not a number", "replay:f.csv", line=7)
    assert rec["raw"] == {"amt": "abc"} and rec["line"] == 7 and rec["reason"].startswith("amount")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["generate", "--rate", "-5"], "must be >= 0"),
        (["generate", "--events", "zero"], "not a whole number"),
        (["generate", "--days", "10", "--duration", "5", "--no-reference"], "exclude each other"),
        (["generate", "--days", "10", "--part", "tail", "--no-reference"], "needs --tail-days"),
        (["generate", "--days", "10", "--tail-days", "3", "--no-reference"], "needs --part head"),
        (["generate", "--tail-days", "3", "--part", "tail", "--no-reference"], "add --days"),
        (["generate", "--days", "10", "--rate", "50", "--no-reference"], "tail of a history"),
        (["replay", "/nonexistent/file.csv", "--customer-col", "c"], "does not exist"),
        (["generate", "--events", "1", "--no-reference", "--topic", "x'; DROP TABLE t; --"], "topic name"),
    ],
)
def test_cli_bad_input_is_one_line(argv, needle, capsys):
    code = None
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits for bad flag values
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err and len(err.splitlines()) == 1


def test_label_outbox_keeps_due_labels_when_sending_them_fails(tmp_path: Path):
    box = LabelOutbox(tmp_path / "out.jsonl")
    now = datetime(2026, 5, 1, tzinfo=UTC)
    box.add({"transaction_id": "t1", "reported_at": (now - timedelta(days=1)).isoformat()})
    box.release_due(now - timedelta(days=2))  # persisted, not due yet
    with pytest.raises(ConnectionError), LabelOutbox(tmp_path / "out.jsonl").releasing(now) as (due, _):
        assert [x["transaction_id"] for x in due] == ["t1"]
        raise ConnectionError("broker down")
    due, pending = LabelOutbox(tmp_path / "out.jsonl").release_due(now)
    assert [x["transaction_id"] for x in due] == ["t1"] and pending == 0


def test_label_outbox_is_locked_while_labels_are_released(tmp_path: Path):
    import fcntl

    box = LabelOutbox(tmp_path / "out.jsonl")
    with box.releasing(), open(tmp_path / "out.lock", "a+b") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
