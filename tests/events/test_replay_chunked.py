"""The chunked replay (Arrow chunks, column-wise conversion, out-of-core sort) against the row-by-row
reference it replaced: same events in the same order, same dead letters with the same raw rows and
reasons, for CSV and Parquet, sorted and unsorted input (no services)."""

from __future__ import annotations

import csv
import hashlib
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import events.replay as replay
from events.contract import validate_transaction
from events.replay import ColumnMapping, ReplayStats, convert_rows, ordered_events

MAPPING = {
    "transaction_id": "tx",
    "customer": "cust",
    "terminal": "term",
    "amount": "amt",
    "timestamp": "when",
    "product": "sku",
    "quantity": "qty",
    "currency": "cur",
    "label": "fraud",
    "ip_lat": "lat",
}

# values chosen to hit every rule: the usual shapes, and what the column path must hand to the reference
AMOUNTS = ["12.50", "7", "1,234.5", "2.675", "0.125", "1e3", " 99.99 ", "1000000.004", "0.004"]
BAD_AMOUNTS = ["abc", "", "-3", "inf", "nan", "1_000", "2000000"]
TIMES = [
    "2025-05-01 10:00:00",
    "2025-05-01T10:00:00Z",
    "2025-05-01T10:00:00+05:30",
    "2025-05-01",
    "2025-05-01 10:00:00.123456789",
    "2025-03-30 02:30:00",  # inside Berlin's spring-forward gap
    "2025-10-26 02:30:00",  # twice in Berlin (autumn)
    "May 1 2025 10:00",
]
EPOCHS = ["1746093600", "1746093600123", "1746093600.5", "1746093600.0000005"]
BAD_TIMES = ["yesterday-ish", "", "9e99"]
CURRENCIES = ["USD", "usd", "EUR", " gbp "]
BAD_CURRENCIES = ["XYZ", "uſd"]


def _rows(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    base = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    rows = []
    for i in range(n):
        when = datetime.fromtimestamp(base + rng.randrange(0, 200 * 86400), UTC)
        row = {
            "tx": rng.choice([f"t{i}", f"t{i}", ""]),
            "cust": f"c{rng.randrange(60)}",
            "term": f"term-{rng.randrange(20)}",
            "amt": f"{rng.lognormvariate(3, 1):.2f}",
            "when": when.strftime("%Y-%m-%d %H:%M:%S"),
            "sku": f"p{rng.randrange(30)}",
            "qty": rng.choice(["1", "1", "2", "3.0"]),
            "cur": rng.choice(CURRENCIES),
            "fraud": rng.choice(["0"] * 12 + ["1", "yes", "FRAUD", "true", ""]),
            "lat": rng.choice(["", "45.5", "-33.25", "0.00001"]),
        }
        r = rng.random()
        if r < 0.25:  # an odd but valid shape, or a bad value: one field per row
            key, values = rng.choice(
                [
                    ("amt", AMOUNTS + BAD_AMOUNTS),
                    ("when", TIMES + EPOCHS + BAD_TIMES),
                    ("cur", BAD_CURRENCIES),
                    ("qty", ["0", "1.5", "", "x"]),
                    ("cust", ["", "x" * 40, 'quo"te', "back\\slash", "ünï"]),
                    ("lat", ["91", "abc"]),
                    ("sku", ["", "p\x01ctl"]),
                    ("tx", ["0", "y" * 70]),
                ]
            )
            row[key] = rng.choice(values)
        rows.append(row)
    return rows


def _write_csv(rows: list[dict[str, str]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _old_read_csv(path: Path) -> tuple[pd.DataFrame, list[int], list[tuple[int, dict[str, Any], str]]]:
    """The row-by-row replay's CSV reader, verbatim (csv module, physical line numbers)."""
    rows, lines, malformed = [], [], []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        previous = reader.line_num
        for record in reader:
            line, previous = previous + 1, reader.line_num
            if not record:
                continue
            if len(record) != len(header):
                malformed.append(
                    (line, {"fields": record}, f"expected {len(header)} fields, found {len(record)}")
                )
                continue
            rows.append(record)
            lines.append(line)
    return pd.DataFrame(rows, columns=header, dtype=object), lines, malformed


def _old_read_parquet(path: Path) -> tuple[pd.DataFrame, list[int], list]:
    df = pd.read_parquet(path)
    df = df.astype(object).where(df.notna(), None)
    return df, list(range(1, len(df) + 1)), []


def _reference(path: Path, mapping: ColumnMapping) -> tuple[list, list]:
    df, lines, malformed = (_old_read_parquet if path.suffix == ".parquet" else _old_read_csv)(path)
    key = hashlib.blake2b(path.read_bytes(), digest_size=5).hexdigest()
    good, bad = convert_rows(df, mapping, lines, key, label_delay_days=30)
    return good, sorted(malformed + bad, key=lambda b: b[0])


def _chunked(
    path: Path, mapping: ColumnMapping, tmp: Path, chunk_rows: int
) -> tuple[list, list, ReplayStats]:
    bad: list = []
    stats = ReplayStats()
    good = []
    for table in ordered_events(
        path, mapping, lambda *b: bad.append(b), tmp, label_delay_days=30, chunk_rows=chunk_rows, stats=stats
    ):
        for line, value, label in zip(
            *(table.column(c).to_pylist() for c in ("line", "value", "label")), strict=True
        ):
            good.append((line, orjson.loads(value), orjson.loads(label) if label else None))
    return good, sorted(bad, key=lambda b: b[0]), stats


def _time_key(value: str, mapping: ColumnMapping) -> float:
    try:
        return replay._timestamp(value.strip(), replay.ZoneInfo(mapping.timezone)).timestamp()
    except ValueError:
        return float("-inf")


def _event_ms(good: list) -> list[int]:
    return [int(datetime.fromisoformat(ev["event_time"]).timestamp() * 1000) for _, ev, _ in good]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few hundred rows, so a small file crosses many chunk boundaries."""
    monkeypatch.setattr(replay, "CSV_BLOCK_BYTES", 16_000)
    monkeypatch.setattr(replay, "PARQUET_BATCH_ROWS", 300)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("order", ["sorted", "unsorted"])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
def test_chunked_replay_gives_the_row_by_row_events_and_dead_letters(tmp_path, small_chunks, fmt, order, tz):
    mapping = ColumnMapping(dict(MAPPING), timezone=tz)
    rows = _rows(2500, seed=5)
    if order == "sorted":  # in event-time order (rows without a readable time first)
        rows.sort(key=lambda r: _time_key(r["when"], mapping))
    path = tmp_path / f"tx.{fmt}"
    if fmt == "csv":
        _write_csv(rows, path)
        header, body = path.read_text().split("\n", 1)
        # lines the csv module cannot make rows of, an empty line, a quoted field spanning two lines
        odd = (
            "t-x,c1,term-1,5,2024-12-01 00:00:00,p1,1,USD,0\n\n"
            '"t-y",c2,"multi\nline",6,2024-12-01 00:00:01,p2,1,USD,0,0\n'
            '"t-z",c3,"term ""7""",8.5,2024-12-01 00:00:02,p3,1,USD,1,\n'
        )
        path.write_text(header + "\n" + odd + body)
    else:
        pd.DataFrame(rows).to_parquet(path)
    ref_good, ref_bad = _reference(path, mapping)
    good, bad, stats = _chunked(path, mapping, tmp_path / "tmp", chunk_rows=400)

    assert len(ref_good) > 1500 and len(ref_bad) > 100  # the file exercises both sides
    assert good == ref_good  # same events (parsed JSON = the reference dicts), labels, lines and order
    assert bad == ref_bad  # same dead letters: line, raw row, reason
    assert all(validate_transaction(ev) == [] for _, ev, _ in good)
    assert stats.in_order is (order == "sorted")
    if order == "unsorted":
        assert stats.spilled_runs >= 4  # 2500 rows with a budget of 400: sorted out of core
        assert not (tmp_path / "tmp").exists() or not any((tmp_path / "tmp").iterdir())  # runs removed
    else:
        assert stats.spilled_runs == 0


def test_typed_parquet_columns_convert_like_the_row_by_row_path(tmp_path, small_chunks):
    """Parquet keeps its types (ints, floats with gaps, timestamps with and without a zone, booleans)."""
    rng = np.random.default_rng(3)
    n = 1200
    times = pd.Timestamp("2025-03-25", tz="UTC") + pd.to_timedelta(rng.integers(0, 10 * 86400, n), unit="s")
    amounts = np.round(rng.lognormal(3, 1, n), 2)
    amounts[rng.random(n) < 0.05] = np.nan
    amounts[rng.random(n) < 0.02] = -1
    df = pd.DataFrame(
        {
            "cust": rng.integers(0, 300, n),
            "amt": amounts,
            "when_utc": times,
            "when_naive": times.tz_localize(None) + pd.to_timedelta(rng.integers(0, 10**6, n), unit="us"),
            "epoch": times.astype("int64") // 10**9,
            "fraud": rng.random(n) < 0.05,
            "qty": rng.integers(1, 4, n),
            "lat": rng.uniform(-95, 95, n),
        }
    )
    path = tmp_path / "typed.parquet"
    df.to_parquet(path)
    for when in ("when_utc", "when_naive", "epoch"):
        mapping = ColumnMapping(
            {
                "customer": "cust",
                "amount": "amt",
                "timestamp": when,
                "label": "fraud",
                "quantity": "qty",
                "ip_lat": "lat",
            },
            timezone="Europe/Berlin",
        )
        ref_good, ref_bad = _reference(path, mapping)
        good, bad, stats = _chunked(path, mapping, tmp_path / "tmp", chunk_rows=250)
        assert good == ref_good, when
        assert bad == ref_bad, when
        assert len(ref_bad) > 50 and any(lab for _, _, lab in good)


def test_out_of_core_sort_spills_runs_and_merges_them_in_time_order(tmp_path, small_chunks, monkeypatch):
    rows = _rows(3000, seed=9)
    path = tmp_path / "shuffled.csv"
    _write_csv(rows, path)
    mapping = ColumnMapping(dict(MAPPING))
    spilled: list[str] = []
    write = pq.write_table

    def spy(table: pa.Table, where: Any, **kw: Any) -> None:
        spilled.append(str(where))
        write(table, where, **kw)

    monkeypatch.setattr(replay.pq, "write_table", spy)
    monkeypatch.setattr(replay, "MERGE_FAN_IN", 4)  # more runs than the fan-in: merged in two passes
    tmp = tmp_path / "state-tmp"
    good, _, stats = _chunked(path, mapping, tmp, chunk_rows=200)
    assert stats.in_order is False
    assert stats.spilled_runs == len(spilled) >= 5 and stats.merge_passes == 2
    assert all(Path(p).parent.parent == tmp for p in spilled)  # under the state folder's tmp
    assert not any(tmp.iterdir())  # and removed when the replay ends
    ms = _event_ms(good)
    assert ms == sorted(ms)  # time ordered across runs
    lines = [line for line, _, _ in good]
    assert len(lines) == len(set(lines)) == len(_reference(path, mapping)[0])  # every good row once
    # the same file within the budget is sorted in memory: nothing spilled, same events
    spilled.clear()
    again, _, stats2 = _chunked(path, mapping, tmp, chunk_rows=1_000_000)
    assert stats2.spilled_runs == 0 and spilled == [] and again == good


def test_a_file_in_time_order_is_sent_while_it_is_read(tmp_path, small_chunks):
    """The first events come out after the first chunk, not after the whole file."""
    rows = sorted(_rows(3000, seed=2), key=lambda r: r["when"])
    for r in rows:
        r["when"] = r["when"] if r["when"][:2] == "20" and len(r["when"]) == 19 else "2025-01-01 00:00:00"
    rows.sort(key=lambda r: r["when"])
    path = tmp_path / "ordered.csv"
    _write_csv(rows, path)
    read: list[int] = []
    stats = ReplayStats()
    gen = ordered_events(
        path,
        ColumnMapping(dict(MAPPING)),
        lambda *b: None,
        tmp_path / "tmp",
        stats=stats,
        on_read=read.append,
    )
    first = next(gen)
    assert stats.in_order and first.num_rows > 0
    assert sum(read) < len(rows) / 2  # only the first chunk(s) read so far
    total = first.num_rows + sum(t.num_rows for t in gen)
    assert sum(read) == len(rows) and total > len(rows) * 0.8
