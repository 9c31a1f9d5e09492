"""Replay a CSV or Parquet file of real transactions into Kafka, through the same contract.

A column mapping (flags or a small YAML) says which column holds the customer, merchant/terminal,
amount, timestamp and, optionally, product, quantity and a fraud label. Fields the file does not have
get documented defaults. Each row becomes a contract event; a row that cannot (unparseable amount or
time, a value the contract forbids) is reported with its line number and sent to the dead-letter topic
with the raw row and the reason, never dropped. Mapped fraud labels become chargebacks on the labels
topic, `label_delay_days` after the transaction.

The file is read in chunks (Arrow), converted and checked a column at a time, and sent while it is read
when it is already in event-time order; any other file is sorted out of core (sorted runs spilled to
Parquet under the state folder, then merged). `row_to_event` / `convert_row` stay the one row-by-row
definition: the column path gives the same event for every row it accepts and hands every other row to
them, so the events and the dead-letter reasons are those of the row-by-row replay.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import re
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import yaml

from events.contract import (
    TRANSACTION_SCHEMA_VERSION,
    UNKNOWN_COUNTRY,
    enum_values,
    load_schema,
    validate_transaction,
)
from events.producer import LabelOutbox
from kernel.errors import EcomError
from kernel.settings import Settings, get_settings

# contract field -> mapping key; everything but customer/amount/timestamp is optional
MAPPABLE = [
    "customer",
    "merchant",
    "terminal",
    "amount",
    "timestamp",
    "product",
    "quantity",
    "label",
    "transaction_id",
    "currency",
    "payment_method",
    "channel",
    "device_id",
    "device_type",
    "ip_address",
    "ip_country",
    "ip_city",
    "ip_lat",
    "ip_lon",
]
REQUIRED = ["customer", "amount", "timestamp"]
# Defaults for what real files rarely carry. They are contract-valid and recognisably synthetic
# ('ZZ' is the ISO 3166 user-assigned "unknown" code), so nobody mistakes them for observations.
DEFAULTS: dict[str, Any] = {
    "merchant": "unknown",
    "currency": "USD",
    "payment_method": "card",
    "channel": "web",
    "device_type": "desktop",
    "ip_address": "",
    "ip_country": UNKNOWN_COUNTRY,
    "ip_city": "unknown",
    "ip_lat": 0.0,
    "ip_lon": 0.0,
    "product": "unmapped",
    "quantity": 1,
}
TRUE_LABELS = {"1", "true", "t", "yes", "y", "fraud", "1.0"}


@dataclass
class ColumnMapping:
    columns: dict[str, str]
    defaults: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"

    @classmethod
    def from_yaml(cls, path: Path) -> ColumnMapping:
        try:
            doc = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise EcomError(f"mapping file {path} does not exist") from None
        except (OSError, yaml.YAMLError) as exc:
            raise EcomError(f"mapping file {path} is not readable YAML ({exc.__class__.__name__})") from None
        if not isinstance(doc, dict):
            raise EcomError(f"mapping file {path} must be a YAML mapping like 'customer: cust_id'")
        defaults = doc.pop("defaults", None) or {}
        tz = doc.pop("timezone", "UTC")
        unknown = sorted(set(doc) - set(MAPPABLE))
        if unknown:
            raise EcomError(f"mapping file {path}: unknown keys {unknown}; allowed: {MAPPABLE}")
        return cls({k: str(v) for k, v in doc.items() if v is not None}, dict(defaults), str(tz))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ColumnMapping:
        mapping = cls.from_yaml(Path(args.mapping)) if args.mapping else cls({})
        for key in MAPPABLE:
            value = getattr(args, f"{key}_col", None)
            if value:
                mapping.columns[key] = value
        if getattr(args, "default_currency", None):
            mapping.defaults["currency"] = args.default_currency
        if getattr(args, "timezone", None):
            mapping.timezone = args.timezone
        return mapping

    def check(self, available: list[str], source: str) -> None:
        missing = [k for k in REQUIRED if k not in self.columns]
        if missing:
            flags = ", ".join(f"--{k.replace('_', '-')}-col" for k in missing)
            raise EcomError(f"no column mapped for {missing}; pass {flags} or a --mapping YAML")
        absent = {k: c for k, c in self.columns.items() if c not in available}
        if absent:
            raise EcomError(
                f"{source} has no column(s) {sorted(absent.values())} (mapped for {sorted(absent)}); "
                f"its columns are {available}"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise EcomError(
                f"unknown timezone {self.timezone!r}; use an IANA name like Europe/Berlin"
            ) from None


# ---------------------------------------------------------------------------------------------------------
# Reading: the file in chunks, each row with its line number (CSV: the physical line where the row starts,
# as a text editor shows it; Parquet: the row number from 1). Nothing holds more than one chunk.

CSV_BLOCK_BYTES = 1 << 20  # a CSV chunk: ~10,000-30,000 rows of a typical transactions file
PARQUET_BATCH_ROWS = 32_768


@dataclass
class RawChunk:
    """Rows as read (CSV: strings; Parquet: the file's types), their line numbers, and the CSV lines that
    could not be rows at all ((line, {"fields": [...]}, reason): wrong number of fields)."""

    table: pa.Table
    lines: np.ndarray
    malformed: list[tuple[int, dict[str, Any], str]] = field(default_factory=list)


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise EcomError(f"file {path} does not exist")
    if not path.is_file():
        raise EcomError(f"{path} is not a file")


def file_columns(path: Path) -> list[str]:
    """The column names of a CSV (its header) or Parquet file; one clear line when it cannot be read."""
    _check_file(path)
    if _is_parquet(path):
        return [n for n in _parquet_file(path).schema_arrow.names if n not in _parquet_index_columns(path)]
    with path.open("rb") as fh:
        header, _, _ = _csv_header(fh, path)
    return header


def _parquet_file(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise EcomError(f"cannot read {path} as Parquet ({type(exc).__name__}: {str(exc)[:120]})") from None


def _parquet_index_columns(path: Path) -> set[str]:
    """Columns pandas stored for its index (pandas.read_parquet makes them the index, not data)."""
    meta = _parquet_file(path).schema_arrow.pandas_metadata or {}
    return {c for c in meta.get("index_columns", []) if isinstance(c, str)}


def _csv_header(fh: Any, path: Path) -> tuple[list[str], bytes, int]:
    """(column names, bytes read past the header, lines the header took)."""
    buf = fh.read(1 << 16)
    if buf.startswith(b"\xef\xbb\xbf"):
        buf = buf[3:]  # UTF-8 byte order mark (Excel writes one)
    while True:
        end = _record_end(buf, first=True)
        more = b"" if end is not None else fh.read(1 << 20)
        if end is not None or not more:
            break
        buf += more
    head, rest = (buf[: end + 1], buf[end + 1 :]) if end is not None else (buf, b"")
    try:
        header = next(csv.reader(io.StringIO(head.decode("utf-8"), newline="")), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EcomError(f"cannot read {path} as CSV ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not header:
        raise EcomError(f"{path} is empty: a CSV needs a header line naming its columns")
    return header, rest, max(1, head.count(b"\n"))


def _record_end(buf: bytes, first: bool = False) -> int | None:
    """Index of the last (or first) newline in `buf` that ends a record: an even number of quotes before
    it, so it is not inside a quoted field."""
    if b'"' not in buf:
        at = buf.find(b"\n") if first else buf.rfind(b"\n")
        return None if at < 0 else at
    arr = np.frombuffer(buf, dtype=np.uint8)
    quotes = np.flatnonzero(arr == 34)
    newlines = np.flatnonzero(arr == 10)
    even = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    if not len(even):
        return None
    return int(even[0] if first else even[-1])


def read_chunks(
    path: Path, columns: list[str] | None = None, block_bytes: int | None = None
) -> Iterator[RawChunk]:
    """The file as a stream of chunks (only `columns` when given); memory is one chunk, whatever the size."""
    _check_file(path)
    if _is_parquet(path):
        yield from _parquet_chunks(path, columns, PARQUET_BATCH_ROWS)
    else:
        yield from _csv_chunks(path, columns, block_bytes or CSV_BLOCK_BYTES)


def _parquet_chunks(path: Path, columns: list[str] | None, batch_rows: int) -> Iterator[RawChunk]:
    pf = _parquet_file(path)
    index_cols = _parquet_index_columns(path)
    names = columns or [n for n in pf.schema_arrow.names if n not in index_cols]
    first = 1
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=names):
            yield RawChunk(pa.Table.from_batches([batch]), np.arange(first, first + batch.num_rows))
            first += batch.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise EcomError(f"cannot read {path} as Parquet ({type(exc).__name__}: {str(exc)[:120]})") from None


def _csv_chunks(path: Path, columns: list[str] | None, block_bytes: int) -> Iterator[RawChunk]:
    with path.open("rb") as fh:
        header, buf, header_lines = _csv_header(fh, path)
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise EcomError(
                f"{path} names the column(s) {dupes} more than once; give every column its own name"
            )
        line = header_lines + 1
        eof = False
        while not eof or buf:
            if not eof and len(buf) < block_bytes:
                more = fh.read(block_bytes)
                eof = not more
                buf += more
                continue
            end = len(buf) - 1 if eof else _record_end(buf)
            if end is None:  # a record longer than a block: read on
                more = fh.read(block_bytes)
                eof = not more
                buf += more
                continue
            block, buf = buf[: end + 1], buf[end + 1 :]
            chunk, n_lines = _csv_block(block, header, columns, line, path)
            line += n_lines
            if chunk.table.num_rows or chunk.malformed:
                yield chunk


def _csv_block(
    block: bytes, header: list[str], columns: list[str] | None, first_line: int, path: Path
) -> tuple[RawChunk, int]:
    """One block of whole records -> (chunk, physical lines it spans).

    Blocks without quotes (the usual export of numbers and ids) are split into lines with numpy and parsed
    by Arrow's C++ reader; blocks with quotes (a field may span lines) go through Python's csv module, which
    numbers lines exactly as before. Either way a line with the wrong number of fields is reported.
    """
    if b'"' not in block and block.count(b"\r") == block.count(b"\r\n"):
        fast = _csv_block_arrow(block, header, columns, first_line, path)
        if fast is not None:
            return fast
    return _csv_block_python(block, header, columns, first_line, path)


def _csv_block_arrow(
    block: bytes, header: list[str], columns: list[str] | None, first_line: int, path: Path
) -> tuple[RawChunk, int] | None:
    names = columns or header
    n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    invalid = 0

    def count_invalid(_row: Any) -> str:
        nonlocal invalid
        invalid += 1
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.py_buffer(block),
            read_options=pcsv.ReadOptions(column_names=header, use_threads=True),
            parse_options=pcsv.ParseOptions(quote_char=False, invalid_row_handler=count_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, include_columns=names
            ),
        )
    except pa.ArrowInvalid as exc:
        if "utf8" in str(exc).lower():
            raise EcomError(f"cannot read {path} as CSV (not UTF-8 text: {str(exc)[:100]})") from None
        if "empty" not in str(exc).lower():
            return None
        table = None
    if table is not None and not invalid and table.num_rows == n_lines:
        # the usual block: every line a row
        return RawChunk(table, np.arange(first_line, first_line + n_lines, dtype=np.int64)), n_lines
    # some lines are empty or have the wrong number of fields: find which, with numpy
    arr = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block))
    starts = np.concatenate(([0], ends[:-1] + 1))
    stops = ends.copy()
    has_cr = stops > starts
    has_cr[has_cr] = arr[stops[has_cr] - 1] == 13
    stops = stops - has_cr
    commas = np.flatnonzero(arr == 44)
    fields = np.searchsorted(commas, stops) - np.searchsorted(commas, starts) + 1
    empty = stops == starts
    valid = ~empty & (fields == len(header))
    malformed = []
    for i in np.flatnonzero(~empty & ~valid):
        text = block[starts[i] : stops[i]].decode("utf-8", errors="replace")
        malformed.append(
            (
                first_line + int(i),
                {"fields": text.split(",")},
                f"expected {len(header)} fields, found {fields[i]}",
            )
        )
    if table is None:
        table = pa.Table.from_arrays([pa.array([], pa.string()) for _ in names], names=names)
    if table.num_rows != int(valid.sum()):
        return None  # Arrow saw the lines differently: let the csv module decide
    return RawChunk(table, first_line + np.flatnonzero(valid), malformed), len(ends)


def _csv_block_python(
    block: bytes, header: list[str], columns: list[str] | None, first_line: int, path: Path
) -> tuple[RawChunk, int]:
    try:
        reader = csv.reader(io.StringIO(block.decode("utf-8"), newline=""))
        rows: list[list[str]] = []
        lines: list[int] = []
        malformed: list[tuple[int, dict[str, Any], str]] = []
        previous = 0
        for record in reader:
            line, previous = first_line + previous, reader.line_num  # a quoted field may span lines
            if not record:
                continue  # an empty line holds no row
            if len(record) != len(header):
                malformed.append(
                    (line, {"fields": record}, f"expected {len(header)} fields, found {len(record)}")
                )
                continue
            rows.append(record)
            lines.append(line)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EcomError(f"cannot read {path} as CSV ({type(exc).__name__}: {str(exc)[:120]})") from None
    names = columns or header
    idx = [header.index(n) for n in names]
    table = pa.Table.from_arrays([pa.array([r[i] for r in rows], pa.string()) for i in idx], names=names)
    return RawChunk(table, np.asarray(lines, dtype=np.int64), malformed), reader.line_num


def _python_rows(table: pa.Table, idx: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows as Python values, the way the row-by-row path always saw them (NaN is a missing value)."""
    part = table if idx is None else table.take(pa.array(idx, pa.int64()))
    rows = part.to_pylist()
    for row in rows:
        for k, v in row.items():
            if isinstance(v, float) and v != v:
                row[k] = None
    return rows


def read_table(path: Path) -> tuple[pd.DataFrame, list[int], list[tuple[int, dict[str, Any], str]]]:
    """The whole file at once: (rows as raw values, each row's line number, malformed lines).

    For small files and tests; the replay itself reads with `read_chunks`.
    """
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    malformed: list[tuple[int, dict[str, Any], str]] = []
    names = file_columns(path)
    for chunk in read_chunks(path):
        rows.extend(_python_rows(chunk.table))
        lines.extend(int(x) for x in chunk.lines)
        malformed.extend(chunk.malformed)
    return pd.DataFrame(rows, columns=names, dtype=object), lines, malformed


def _number(value: Any, what: str) -> float:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        raise ValueError(f"{what}: empty")
    try:
        x = float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return x


def _timestamp(value: Any, tz: ZoneInfo) -> datetime:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("timestamp: empty")
    if isinstance(value, datetime):
        ts = value
    else:
        text = str(value).strip()
        try:
            epoch = float(text)
        except ValueError:
            epoch = None
        if epoch is not None:  # unix epoch in seconds (or milliseconds when it is that large)
            try:
                ts = datetime.fromtimestamp(epoch / 1000 if epoch > 1e11 else epoch, UTC)
            except (OverflowError, OSError):
                raise ValueError(f"timestamp: {text!r} is out of range as a unix time") from None
        else:
            try:
                ts = pd.Timestamp(text).to_pydatetime()
            except (ValueError, TypeError):
                raise ValueError(f"timestamp: {text!r} is not a date/time") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=tz)
    return ts.astimezone(UTC)


def row_to_event(
    row: dict[str, Any], mapping: ColumnMapping, tx_id: str, tz: ZoneInfo
) -> tuple[dict[str, Any], bool]:
    """(contract event, is-fraud) from one raw row; ValueError says which field is wrong."""
    cols = mapping.columns
    defaults = DEFAULTS | mapping.defaults

    def get(key: str) -> Any:
        if key in cols:
            v = row.get(cols[key])
            if v is not None and not (isinstance(v, str) and v.strip() == ""):
                return v.strip() if isinstance(v, str) else v
            if key in REQUIRED:
                raise ValueError(f"{key}: empty (column {cols[key]!r})")
        return defaults.get(key)

    customer = get("customer")
    amount = round(_number(get("amount"), "amount"), 2)
    ts = _timestamp(get("timestamp"), tz)
    quantity = _number(get("quantity"), "quantity")
    if quantity != int(quantity) or quantity < 1:
        raise ValueError(f"quantity: {quantity!r} is not a whole number >= 1")
    quantity = int(quantity)
    merchant = str(get("merchant"))
    terminal = get("terminal")
    device = get("device_id")
    event = {
        "schema_version": 1,
        "transaction_id": str(get("transaction_id") or tx_id),
        "customer_id": str(customer),
        "merchant_id": merchant,
        "terminal_id": str(terminal) if terminal is not None else merchant,
        "event_time": ts.isoformat(timespec="milliseconds"),
        "currency": str(get("currency")).upper(),
        "amount": amount,
        "payment_method": str(get("payment_method")),
        "channel": str(get("channel")),
        "device_id": str(device) if device is not None else f"replay-{customer}",
        "device_type": str(get("device_type")),
        "ip_address": str(get("ip_address")),
        "ip_country": str(get("ip_country")).upper(),
        "ip_city": str(get("ip_city")),
        "ip_lat": _number(get("ip_lat"), "ip_lat"),
        "ip_lon": _number(get("ip_lon"), "ip_lon"),
        "line_items": [
            {
                "product_id": str(get("product")),
                "quantity": quantity,
                "unit_price": round(amount / quantity, 2) if quantity else amount,
            }
        ],
    }
    label_value = get("label") if "label" in cols else None
    is_fraud = label_value is not None and str(label_value).strip().lower() in TRUE_LABELS
    return event, is_fraud


def _raw(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the dead-letter record carries it: JSON-friendly values, None for a missing one."""
    return {
        k: (None if v is None else (v if isinstance(v, str | int | float | bool) else str(v)))
        for k, v in row.items()
    }


def _chargeback(event: dict[str, Any], label_delay_days: float) -> dict[str, Any]:
    reported = datetime.fromisoformat(event["event_time"]) + timedelta(days=label_delay_days)
    return {
        "schema_version": 1,
        "transaction_id": event["transaction_id"],
        "customer_id": event["customer_id"],
        "reported_at": reported.isoformat(timespec="milliseconds"),
        "fraud_scenario": "reported",
        "amount": event["amount"],
    }


def convert_row(
    row: dict[str, Any], mapping: ColumnMapping, tx_id: str, tz: ZoneInfo, label_delay_days: float
) -> tuple[dict[str, Any], dict[str, Any] | None] | str:
    """(event, chargeback or None) for one raw row, or the reason it cannot be an event.

    The reference definition of a row's conversion: the vectorised path (`convert_chunk`) gives the same
    result for every row it accepts and hands every row it is not sure about to this function.
    """
    try:
        event, is_fraud = row_to_event(row, mapping, tx_id, tz)
    except ValueError as exc:
        return str(exc)
    errors = validate_transaction(event)
    if errors:
        return "; ".join(errors)
    return event, (_chargeback(event, label_delay_days) if is_fraud else None)


def convert_rows(
    df: pd.DataFrame,
    mapping: ColumnMapping,
    lines: Sequence[int] | int,
    file_key: str,
    label_delay_days: float,
) -> tuple[list[tuple[int, dict[str, Any], dict[str, Any] | None]], list[tuple[int, dict[str, Any], str]]]:
    """Row by row: ([(line, event, label)] in event-time order, [(line, raw row, reason)]).

    The reference the chunked replay is tested against; fine for a few thousand rows.
    """
    tz = ZoneInfo(mapping.timezone)
    good, bad = [], []
    for i, row in enumerate(df.to_dict(orient="records")):
        line = lines + i if isinstance(lines, int) else lines[i]
        out = convert_row(row, mapping, f"replay-{file_key}-{line}", tz, label_delay_days)
        if isinstance(out, str):
            bad.append((line, _raw(row), out))
        else:
            good.append((line, *out))
    good.sort(key=lambda g: g[1]["event_time"])  # a replay is a stream: in event-time order
    return good, bad


# ---------------------------------------------------------------------------------------------------------
# Converting a chunk, column by column (pyarrow.compute / numpy). Every rule of `row_to_event` and of the
# contract is applied to whole columns; a row the columns cannot settle for sure (an exotic date format, a
# value the contract refuses, a number written oddly) goes to `convert_row`, the row-by-row reference, which
# gives the event or the exact reason it gave before. So the events and the dead letters are those of the
# row-by-row replay, and the row-by-row cost is paid only by the rows that need it.

NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
# a time of day followed by Z or a UTC offset: the string says its own zone
HAS_OFFSET = r"[T ]\d{1,2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
EPOCH_LIMIT_S = 9.2e9  # unix seconds the columns handle (years 1678..2261: numpy's nanosecond range)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
# a converted chunk: event-time milliseconds, line, Kafka key and value, chargeback JSON (or null)
EVENTS_SCHEMA = pa.schema(
    [
        ("ms", pa.int64()),
        ("line", pa.int64()),
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("label", pa.binary()),
    ]
)
_CONTRACT_KEYWORDS = {
    "type", "description", "format", "enum", "minLength", "maxLength", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "const", "items", "minItems", "maxItems", "properties",
    "required", "additionalProperties",
}  # fmt: skip


@dataclass
class _Text:
    values: pa.Array  # stripped strings ('' where absent)
    present: np.ndarray  # holds a non-empty value
    unsure: np.ndarray  # only the row-by-row path can say what it becomes
    falsy: np.ndarray  # a present value Python counts as false (0, 0.0, False)


def _np(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(a.to_numpy(zero_copy_only=False))


def _flat(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _blank(n: int) -> pa.Array:
    return pa.repeat(pa.scalar("", pa.string()), n)


def _text(col: pa.Array | None, n: int) -> _Text:
    no = np.zeros(n, dtype=bool)
    if col is None:
        return _Text(_blank(n), no, no.copy(), no.copy())
    t = col.type
    valid = ~_np(col.is_null())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = pc.fill_null(pc.utf8_trim_whitespace(col.cast(pa.string())), "")
        return _Text(s, _np(pc.not_equal(s, "")), no, no.copy())
    if pa.types.is_integer(t):
        x = _np(pc.fill_null(col, 1))
        return _Text(pc.fill_null(col.cast(pa.string()), ""), valid, no, valid & (x == 0))
    if pa.types.is_floating(t):
        x = _np(pc.fill_null(col.cast(pa.float64()), np.nan)).astype(np.float64)
        present = ~np.isnan(x)
        ax = np.abs(x)
        # Python writes these with an exponent where Arrow does not (or as inf/nan): leave them to Python
        unsure = present & (~np.isfinite(x) | (ax >= 1e16) | ((ax > 0) & (ax < 1e-4)))
        s = pc.fill_null(pa.array(x).cast(pa.string()), "")
        s = pc.if_else(pc.match_substring_regex(s, r"[.e]"), s, pc.binary_join_element_wise(s, ".0", ""))
        return _Text(s, present, unsure, present & (x == 0))
    if pa.types.is_boolean(t):
        b = pc.fill_null(col, False)
        return _Text(pc.if_else(b, "True", "False"), valid, no, valid & ~_np(b))
    return _Text(_blank(n), valid, valid.copy(), no.copy())


def _numbers(col: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, present, unsure) of a numeric field, as `_number` reads it."""
    if col is None:
        return np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = pc.fill_null(pc.utf8_trim_whitespace(col.cast(pa.string())), "")
        present = _np(pc.not_equal(s, ""))
        if pc.any(pc.match_substring(s, ",")).as_py():
            s = pc.replace_substring(s, ",", "")
        try:  # Arrow reads only what float() reads, to the same double: the whole column at once
            x = _np(pc.if_else(pa.array(present), s, "0").cast(pa.float64())).astype(np.float64)
            unsure = np.zeros(n, dtype=bool)
        except pa.ArrowInvalid:
            ok = _np(pc.match_substring_regex(s, NUMBER))
            x = _np(pc.if_else(pa.array(ok), s, "0").cast(pa.float64())).astype(np.float64)
            unsure = present & ~ok
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        x = _np(pc.fill_null(col.cast(pa.float64()), np.nan)).astype(np.float64)
        present = ~np.isnan(x)
        unsure = np.zeros(n, dtype=bool)
    else:
        return np.zeros(n), ~_np(col.is_null()), ~_np(col.is_null())
    unsure |= present & ~np.isfinite(x)
    return x, present, unsure


def _round2(x: np.ndarray) -> np.ndarray:
    """Python's round(x, 2) on a column: numpy's, except where x*100 sits on a half (Python decides)."""
    out = np.round(x, 2)
    with np.errstate(invalid="ignore"):
        y = x * 100
        near = np.isfinite(y) & (np.abs(y - np.floor(y) - 0.5) < 1e-6)
    for i in np.flatnonzero(near):
        out[i] = round(float(x[i]), 2)
    return out


def _epoch_us(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unix seconds (milliseconds when > 1e11) -> microseconds, rounded as datetime.fromtimestamp does."""
    with np.errstate(invalid="ignore"):
        sec = np.where(x > 1e11, x / 1000, x)
        ok = np.isfinite(sec) & (np.abs(sec) < EPOCH_LIMIT_S)
        sec = np.where(ok, sec, 0.0)
    frac, whole = np.modf(sec)
    frac = np.rint(frac * 1e6)  # round half to even, like CPython's _PyTime_ROUND_HALF_EVEN
    up, down = frac >= 1e6, frac < 0
    frac = np.where(up, frac - 1e6, np.where(down, frac + 1e6, frac))
    whole = np.where(up, whole + 1, np.where(down, whole - 1, whole))
    return whole.astype(np.int64) * 1_000_000 + frac.astype(np.int64), ok


def _localize(naive_us: np.ndarray, ok: np.ndarray, tz: ZoneInfo) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock microseconds in `tz` -> UTC; a wall time that is ambiguous or skipped (DST) is not ok."""
    if tz.key == "UTC":
        return naive_us, ok
    ns = np.where(ok, naive_us, 0) * 1000
    local = pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    out = local.asi8
    good = ok & (out != np.iinfo(np.int64).min)
    return np.where(good, out // 1000, 0), good


def _to_us(values: np.ndarray, unit: str) -> np.ndarray:
    """Integer times in `unit` -> microseconds (floor, as datetime drops what is finer)."""
    if unit == "ns":
        return values // 1000
    return values * {"s": 1_000_000, "ms": 1000, "us": 1}[unit]


def event_times_us(col: pa.Array, tz: ZoneInfo) -> tuple[np.ndarray, np.ndarray]:
    """(UTC microseconds, ok) of a timestamp column, exactly as `_timestamp` reads each value."""
    n = len(col)
    us = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    t = col.type
    py_values: Any = None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = pc.fill_null(pc.utf8_trim_whitespace(col.cast(pa.string())), "")
        nonempty = _np(pc.not_equal(s, ""))
        try:  # the common case, a column of naive ISO times: Arrow parses it at once (never a number)
            filled = s if nonempty.all() else pc.if_else(pa.array(nonempty), s, "1970-01-01")
            naive = _np(filled.cast(pa.timestamp("us")).cast(pa.int64())).astype(np.int64)
            numeric = np.zeros(n, dtype=bool)
            us, ok = _localize(naive, nonempty, tz)
        except pa.ArrowInvalid:
            numeric = _np(pc.match_substring_regex(s, NUMBER))
            us, ok = _split_times_us(s, nonempty, numeric, tz)
        py_values = s
        todo = nonempty & ~ok
    elif pa.types.is_timestamp(t):
        raw = _np(col.cast(pa.int64()).fill_null(0)).astype(np.int64)
        valid = ~_np(col.is_null())
        if t.tz is None:
            us, ok = _localize(_to_us(raw, t.unit), valid & (np.abs(raw) < _to_limit(t.unit)), tz)
        else:
            us, ok = _to_us(raw, t.unit), valid
        todo = valid & ~ok
    elif pa.types.is_date(t):
        days = _np(col.cast(pa.date32()).cast(pa.int32()).fill_null(0)).astype(np.int64)
        valid = ~_np(col.is_null())
        us, ok = _localize(days * 86_400_000_000, valid & (np.abs(days) < 106_000), tz)
        todo = valid & ~ok
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        x = _np(pc.fill_null(col.cast(pa.float64()), np.nan)).astype(np.float64)
        us, ok = _epoch_us(x)
        ok &= ~np.isnan(x)
        todo = ~np.isnan(x) & ~ok
    else:
        todo = ~_np(col.is_null())
    idx = np.flatnonzero(todo)
    if len(idx):  # what the columns could not settle, value by value with the reference parser
        values = (py_values if py_values is not None else col).take(pa.array(idx)).to_pylist()
        for i, v in zip(idx, values, strict=True):
            try:
                us[i] = (_timestamp(v, tz) - EPOCH) // US
                ok[i] = True
            except (ValueError, TypeError, OverflowError):
                pass
    return us, ok


def _split_times_us(
    s: pa.Array, nonempty: np.ndarray, numeric: np.ndarray, tz: ZoneInfo
) -> tuple[np.ndarray, np.ndarray]:
    """A column of mixed times: unix times where the text is a number (as `_timestamp` tries first), ISO
    text elsewhere."""
    n = len(s)
    us = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    if numeric.any():
        x = _np(pc.if_else(numeric, s, "0").cast(pa.float64())).astype(np.float64)
        e_us, e_ok = _epoch_us(x)
        us = np.where(numeric, e_us, us)
        ok |= numeric & e_ok
    text_idx = np.flatnonzero(nonempty & ~numeric)
    if len(text_idx):
        sub = s.take(pa.array(text_idx))
        t_us, t_ok = _text_times_us(sub, tz)
        us[text_idx], ok[text_idx] = t_us, t_ok
    return us, ok


def _to_limit(unit: str) -> int:
    return {"s": 9_200_000_000, "ms": 9_200_000_000_000, "us": 9_200_000_000_000_000, "ns": 2**63 - 1}[unit]


def _text_times_us(s: pa.Array, tz: ZoneInfo) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 strings -> (UTC microseconds, ok); what neither Arrow nor pandas' ISO parser reads is not ok."""
    n = len(s)
    try:  # the common case: naive 'YYYY-MM-DD[ hh:mm:ss[.ffffff]]', parsed by Arrow
        naive = _np(s.cast(pa.timestamp("us")).cast(pa.int64())).astype(np.int64)
        return _localize(naive, np.ones(n, dtype=bool), tz)
    except pa.ArrowInvalid:
        pass
    # pandas' ISO parser for the rest, zoned and naive strings apart: parsed together, pandas 2.3 gives
    # the naive rows after a zoned one that row's offset
    us = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    aware = _np(pc.match_substring_regex(s, HAS_OFFSET))
    for mask, utc in ((aware, True), (~aware, False)):
        idx = np.flatnonzero(mask)
        if not len(idx):
            continue
        texts = pd.Series(s.take(pa.array(idx)).to_numpy(zero_copy_only=False), dtype=object)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(texts, format="ISO8601", utc=utc, errors="coerce")
            except (ValueError, TypeError):
                continue  # left to the row-by-row parser
        if not utc and getattr(parsed.dtype, "tz", None) is not None:
            continue  # a zone the pattern did not see: row by row
        ns = parsed.array.asi8
        good = ns != np.iinfo(np.int64).min
        part = np.where(good, ns, 0) // 1000  # floor: to_pydatetime drops nanoseconds
        if not utc:
            part, good = _localize(part, good, tz)
        us[idx], ok[idx] = part, good
    return us, ok


def _is_fraud(col: pa.Array | None, n: int, default: Any) -> tuple[np.ndarray, np.ndarray]:
    """(is fraud, unsure) as `row_to_event` reads the label (truthy text, True, or the number 1)."""
    no = np.zeros(n, dtype=bool)
    if col is None:
        return no, no.copy()
    default_true = default is not None and str(default).strip().lower() in TRUE_LABELS
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = pc.fill_null(pc.utf8_trim_whitespace(col.cast(pa.string())), "")
        truthy = _np(pc.is_in(pc.utf8_lower(s), pa.array(sorted(TRUE_LABELS))))
        empty = _np(pc.equal(s, ""))
        return np.where(empty, default_true, truthy), ~_np(pc.string_is_ascii(s))
    if pa.types.is_boolean(t):
        valid = ~_np(col.is_null())
        return np.where(valid, _np(pc.fill_null(col, False)), default_true), no.copy()
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        x = _np(pc.fill_null(col.cast(pa.float64()), np.nan)).astype(np.float64)
        return np.where(np.isnan(x), default_true, x == 1), no.copy()
    return no, ~_np(col.is_null())


Value = Any  # a column (pa.Array of strings, or a numpy array of numbers), or one Python value for all rows


def _contract_unsure(built: dict[str, Value], n: int) -> np.ndarray:
    """Rows whose built fields may break a rule of the contract.

    Derived from the JSON Schema itself, so a new rule there reaches the replay: a keyword this check does
    not know sends every row to the reference validator rather than letting anything through unchecked.
    A field with one value for all rows (a default) is checked once, with the reference validator's rules.
    """
    everything = np.ones(n, dtype=bool)
    schema = load_schema("transaction", TRANSACTION_SCHEMA_VERSION)
    props = schema["properties"]
    top = {k.split(".")[0] for k in built}
    if set(props) != top or set(schema.get("required", [])) - top:
        return everything
    unsure = np.zeros(n, dtype=bool)

    def check(spec: dict[str, Any], value: Value) -> np.ndarray | bool:
        if set(spec) - _CONTRACT_KEYWORDS:
            return True
        if "const" in spec:
            return value != spec["const"]
        kind = spec.get("type")
        if kind == "array":
            return spec.get("minItems", 1) > 1 or spec.get("maxItems", 1) < 1
        if kind not in ("string", "number", "integer"):
            return True
        if not isinstance(value, pa.Array | np.ndarray):  # one value for every row
            if kind == "string":
                if not isinstance(value, str) or "\x00" in value or not value.isprintable():
                    return True
                if "pattern" in spec and not re.search(spec["pattern"], value):
                    return True
                return bool(
                    len(value) < spec.get("minLength", 0)
                    or len(value) > spec.get("maxLength", len(value))
                    or ("enum" in spec and value not in spec["enum"])
                )
            value = np.asarray([value], dtype=np.float64)
        bad = np.zeros(len(value), dtype=bool)
        if kind == "string":
            lengths = _np(pc.utf8_length(value))
            if "minLength" in spec:
                bad |= lengths < spec["minLength"]
            if "maxLength" in spec:
                bad |= lengths > spec["maxLength"]
            if "enum" in spec:
                bad |= ~_np(pc.is_in(value, pa.array(spec["enum"])))
            if "pattern" in spec:
                try:
                    bad |= ~_np(pc.match_substring_regex(value, spec["pattern"]))
                except pa.ArrowInvalid:
                    return True
            # what is not printable (control characters, NUL among them) is the reference path's: the
            # contract refuses NUL and the JSON below escapes only quotes and backslashes
            bad |= ~_np(pc.utf8_is_printable(value))
        else:
            x = np.asarray(value, dtype=np.float64)
            with np.errstate(invalid="ignore"):
                if "minimum" in spec:
                    bad |= ~(x >= spec["minimum"])
                if "maximum" in spec:
                    bad |= ~(x <= spec["maximum"])
                if "exclusiveMinimum" in spec:
                    bad |= ~(x > spec["exclusiveMinimum"])
                if "exclusiveMaximum" in spec:
                    bad |= ~(x < spec["exclusiveMaximum"])
        return bad if len(bad) == n else bool(bad.any())

    for name, spec in props.items():
        specs = [(name, spec)]
        if spec.get("type") == "array":
            specs += [(f"{name}.{k}", v) for k, v in spec.get("items", {}).get("properties", {}).items()]
        for key, sub in specs:
            if key not in built:
                return everything
            bad = check(sub, built[key])
            if bad is True:
                return everything
            if bad is not False:
                unsure |= bad
    return unsure


def _json_text(a: pa.Array) -> pa.Array:
    """A JSON string body: quotes and backslashes escaped (rows with control characters never get here)."""
    if pc.any(pc.match_substring(a, "\\")).as_py():
        a = pc.replace_substring(a, "\\", "\\\\")
    if pc.any(pc.match_substring(a, '"')).as_py():
        a = pc.replace_substring(a, '"', '\\"')
    return a


def _json_number(x: np.ndarray) -> pa.Array:
    s = pa.array(x, pa.float64()).cast(pa.string())  # shortest text that reads back as the same double
    return pc.if_else(pc.match_substring_regex(s, r"[.e]"), s, pc.binary_join_element_wise(s, ".0", ""))


@cache
def _clock_texts() -> tuple[pa.Array, pa.Array]:
    """'HH:MM:SS' for every second of a day and '000'..'999': times are formatted by lookup."""
    sod = np.arange(86_400)
    hms = [f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in zip(sod // 3600, sod // 60 % 60, sod % 60, strict=True)]
    return pa.array(hms), pa.array([f"{i:03d}" for i in range(1000)])


def _iso_ms_pieces(ms: np.ndarray) -> list[Any]:
    """Event times as the contract writes them ('2025-05-01T10:00:00.000+00:00'), as JSON pieces."""
    if not len(ms):
        return [""]
    days = np.floor_divide(ms, 86_400_000)
    rest = ms - days * 86_400_000
    first, last = int(days.min()), int(days.max())
    dates = pa.array(np.datetime_as_string(np.arange(first, last + 1).astype("datetime64[D]")))
    hms, millis = _clock_texts()
    return [
        dates.take(pa.array(days - first)),
        "T",
        hms.take(pa.array(rest // 1000)),
        ".",
        millis.take(pa.array(rest % 1000)),
        "+00:00",
    ]


def _render(pieces: list[Any], n: int) -> pa.Array:
    """Concatenate literal text and string columns row by row (adjacent literals folded into one)."""
    folded: list[Any] = []
    for p in pieces:
        if isinstance(p, str) and folded and isinstance(folded[-1], str):
            folded[-1] += p
        else:
            folded.append(p)
    if not any(isinstance(p, pa.Array) for p in folded):
        return pa.repeat(pa.scalar("".join(folded)), n)
    return pc.binary_join_element_wise(*folded, "")


@dataclass
class ChunkContext:
    """What every chunk of one replay shares."""

    mapping: ColumnMapping
    file_key: Any  # () -> str, computed on first use (hashing a big file costs a read of it)
    label_delay_days: float = 30.0
    tz: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.mapping.timezone)


def convert_chunk(
    chunk: RawChunk, ctx: ChunkContext
) -> tuple[pa.Table, list[tuple[int, dict[str, Any], str]]]:
    """(good rows as EVENTS_SCHEMA, unsorted; bad rows as (line, raw row, reason))."""
    table, lines, n = chunk.table, chunk.lines, chunk.table.num_rows
    cols = ctx.mapping.columns
    defaults = DEFAULTS | ctx.mapping.defaults
    unsure = np.zeros(n, dtype=bool)

    def column(key: str) -> pa.Array | None:
        return _flat(table.column(cols[key])) if key in cols else None

    def text(key: str, fallback: Value = "None") -> Value:
        """The stripped value, else the default, else `fallback` (str(None) for most fields, as before)."""
        nonlocal unsure
        default = defaults.get(key)
        alt = fallback if default is None else str(default)
        col = column(key)
        if col is None:
            return alt
        f = _text(col, n)
        if key in REQUIRED:  # an empty value is the reference path's to report
            unsure |= f.unsure | ~f.present
            return f.values
        unsure |= f.unsure
        if f.present.all():
            return f.values
        if not f.present.any():
            return alt
        return pc.if_else(pa.array(f.present), f.values, alt)

    def number(key: str, what: str) -> Value:
        nonlocal unsure
        x, present, u = _numbers(column(key), n)
        if key in REQUIRED:
            unsure |= u | ~present
            return x
        unsure |= u
        if present.all():
            return x
        try:
            d = _number(defaults.get(key), what)
        except ValueError:
            unsure |= ~present
            return x
        return d if not present.any() else np.where(present, x, d)

    customer = text("customer")
    amount = _round2(number("amount", "amount"))
    us, ok = event_times_us(column("timestamp"), ctx.tz)
    unsure |= ~ok
    ms = np.floor_divide(us, 1000)
    quantity = number("quantity", "quantity")
    if isinstance(quantity, np.ndarray):
        with np.errstate(invalid="ignore"):
            unsure |= ~(quantity >= 1) | (quantity != np.floor(quantity))
        quantity = np.where(unsure, 1, quantity).astype(np.int64)
        unit_price = _round2(amount / quantity)
    elif quantity >= 1 and quantity == int(quantity):
        quantity = int(quantity)
        unit_price = _round2(amount / quantity)
    else:
        unsure[:] = True
        quantity, unit_price = 1, amount
    merchant = text("merchant")
    terminal = text("terminal", fallback=merchant)
    device = text("device_id", fallback=pc.binary_join_element_wise("replay-", customer, ""))
    tx = _text(column("transaction_id"), n) if "transaction_id" in cols else None
    tx_default = defaults.get("transaction_id")
    generated: Value = (
        str(tx_default)
        if tx_default
        else pc.binary_join_element_wise(f"replay-{ctx.file_key()}-", pa.array(lines).cast(pa.string()), "")
    )
    transaction_id = generated
    if tx is not None:
        unsure |= tx.unsure
        usable = tx.present & ~tx.falsy
        transaction_id = tx.values if usable.all() else pc.if_else(pa.array(usable), tx.values, generated)
    fields = {
        key: text(key)
        for key in (
            "currency",
            "payment_method",
            "channel",
            "device_type",
            "ip_address",
            "ip_country",
            "ip_city",
        )
    }
    product = text("product")
    for key in ("currency", "ip_country"):  # str.upper(): Python and Arrow agree on ASCII only
        if isinstance(fields[key], str):
            fields[key] = fields[key].upper()
        else:
            unsure |= ~_np(pc.string_is_ascii(fields[key]))
            fields[key] = pc.utf8_upper(fields[key])
    lat, lon = number("ip_lat", "ip_lat"), number("ip_lon", "ip_lon")
    fraud, u = _is_fraud(column("label"), n, defaults.get("label"))
    unsure |= u
    built: dict[str, Value] = {
        "schema_version": 1,
        "transaction_id": transaction_id,
        "customer_id": customer,
        "merchant_id": merchant,
        "terminal_id": terminal,
        "event_time": "1970-01-01T00:00:00.000+00:00",  # rendered below from a valid time
        "currency": fields["currency"],
        "amount": amount,
        "payment_method": fields["payment_method"],
        "channel": fields["channel"],
        "device_id": device,
        "device_type": fields["device_type"],
        "ip_address": fields["ip_address"],
        "ip_country": fields["ip_country"],
        "ip_city": fields["ip_city"],
        "ip_lat": lat,
        "ip_lon": lon,
        "line_items": [{}],
        "line_items.product_id": product,
        "line_items.quantity": quantity,
        "line_items.unit_price": unit_price,
    }
    unsure |= _contract_unsure(built, n)

    sure = np.flatnonzero(~unsure)
    take = pa.array(sure, pa.int64())

    def js(value: Value) -> list[Any]:
        """JSON pieces of a field for the sure rows."""
        if isinstance(value, pa.Array):
            return ['"', _json_text(value.take(take)), '"']
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "i":
                return [pa.array(value[sure]).cast(pa.string())]
            return [_json_number(value[sure])]
        return [orjson.dumps(value).decode()]

    pieces: list[Any] = ['{"schema_version":1']
    for key in ("transaction_id", "customer_id", "merchant_id", "terminal_id"):
        pieces += [f',"{key}":', *js(built[key])]
    pieces += [',"event_time":"', *_iso_ms_pieces(ms[sure]), '"']
    for key in (
        "currency", "amount", "payment_method", "channel", "device_id", "device_type", "ip_address",
        "ip_country", "ip_city", "ip_lat", "ip_lon",
    ):  # fmt: skip
        pieces += [f',"{key}":', *js(built[key])]
    pieces += [',"line_items":[{"product_id":', *js(product), ',"quantity":', *js(quantity)]
    pieces += [',"unit_price":', *js(unit_price), "}]}"]
    value = _render(pieces, len(sure))

    labels: list[bytes | None] = [None] * len(sure)
    delay = timedelta(days=ctx.label_delay_days)
    fraud_rows = np.flatnonzero(fraud[sure])
    if len(fraud_rows):
        rows = sure[fraud_rows]
        tx_ids = _pick(transaction_id, rows)
        customers = _pick(customer, rows)
        amounts = _pick(amount, rows)
        for j, i, t_id, c_id, amt in zip(fraud_rows, rows, tx_ids, customers, amounts, strict=True):
            reported = EPOCH + timedelta(milliseconds=int(ms[i])) + delay
            labels[j] = orjson.dumps(
                {
                    "schema_version": 1,
                    "transaction_id": t_id,
                    "customer_id": c_id,
                    "reported_at": reported.isoformat(timespec="milliseconds"),
                    "fraud_scenario": "reported",
                    "amount": float(amt),
                }
            )
    good = pa.table(
        {
            "ms": pa.array(ms[sure], pa.int64()),
            "line": pa.array(lines[sure], pa.int64()),
            "key": customer.take(take).cast(pa.binary()),
            "value": value.cast(pa.binary()),
            "label": pa.array(labels, pa.binary()),
        },
        schema=EVENTS_SCHEMA,
    )
    # the rows the columns could not settle: the row-by-row reference decides, with its exact reasons
    bad: list[tuple[int, dict[str, Any], str]] = list(chunk.malformed)
    idx = np.flatnonzero(unsure)
    if len(idx):
        extra: dict[str, list[Any]] = {k: [] for k in EVENTS_SCHEMA.names}
        for i, row in zip(idx, _python_rows(table, idx), strict=True):
            line = int(lines[i])
            out = convert_row(
                row, ctx.mapping, f"replay-{ctx.file_key()}-{line}", ctx.tz, ctx.label_delay_days
            )
            if isinstance(out, str):
                bad.append((line, _raw(row), out))
                continue
            event, label = out
            extra["ms"].append(
                (datetime.fromisoformat(event["event_time"]) - EPOCH) // timedelta(milliseconds=1)
            )
            extra["line"].append(line)
            extra["key"].append(event["customer_id"].encode())
            extra["value"].append(orjson.dumps(event))
            extra["label"].append(orjson.dumps(label) if label is not None else None)
        if extra["line"]:
            good = pa.concat_tables([good, pa.table(extra, schema=EVENTS_SCHEMA)])
    return good, bad


def _pick(value: Value, rows: np.ndarray) -> list[Any]:
    if isinstance(value, pa.Array):
        return value.take(pa.array(rows, pa.int64())).to_pylist()
    if isinstance(value, np.ndarray):
        return value[rows].tolist()
    return [value] * len(rows)


# ---------------------------------------------------------------------------------------------------------
# Ordering: a replay is a stream in event-time order (ties keep file order). A file already in that order
# is sent while it is read; any other is sorted out of core: sorted runs of `chunk_rows` rows spilled to
# Parquet under the state folder, merged batch by batch. Memory is a chunk budget, not the file size.

DEFAULT_CHUNK_ROWS = 100_000  # rows per sorted run (~50 MB of rendered events): the memory budget
RUN_ROW_GROUP = 4096  # rows per Parquet row group of a run: what the merge holds per run
MERGE_FAN_IN = 32  # runs merged at once; more runs are merged in passes
# runs are read once, soon: fast compression, and no dictionaries (every event is unique)
RUN_PARQUET: dict[str, Any] = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}


@dataclass
class ReplayStats:
    rows: int = 0  # well-formed rows read (malformed CSV lines are dead letters, not rows)
    in_order: bool = True
    scanned_rows: int | None = None  # rows of the order check when it read the whole file
    spilled_runs: int = 0
    merge_passes: int = 0


def _file_key(path: Path) -> Any:
    """() -> the file's content hash (ids `replay-<hash>-<line>`), read in blocks on first use only."""

    @cache
    def key() -> str:
        digest = hashlib.blake2b(digest_size=5)
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    return key


def in_time_order(path: Path, mapping: ColumnMapping) -> tuple[bool, int]:
    """(are the rows already in event-time order, rows read); stops at the first row out of order.

    Reads only the timestamp column; rows whose time cannot be read are dead letters and do not count.
    """
    tz = ZoneInfo(mapping.timezone)
    last = np.iinfo(np.int64).min
    rows = 0
    for chunk in read_chunks(path, columns=[mapping.columns["timestamp"]]):
        us, ok = event_times_us(_flat(chunk.table.column(0)), tz)
        ms = np.floor_divide(us[ok], 1000)
        rows += chunk.table.num_rows
        if len(ms):
            if ms[0] < last or bool((np.diff(ms) < 0).any()):
                return False, rows
            last = int(ms[-1])
    return True, rows


def _time_sorted(table: pa.Table) -> pa.Table:
    order = np.lexsort((_np(table.column("line")), _np(table.column("ms"))))
    return table.take(pa.array(order, pa.int64()))


def ordered_events(
    path: Path,
    mapping: ColumnMapping,
    on_bad: Any,
    tmp_dir: Path,
    label_delay_days: float = 30.0,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats: ReplayStats | None = None,
    on_read: Any = None,
) -> Iterator[pa.Table]:
    """The file's events in event-time order, as tables of EVENTS_SCHEMA (a chunk or a merge batch each).

    Bad rows go to `on_bad(line, raw row, reason)` as they are read; `on_read(n)` hears every chunk read.
    """
    mapping.check(file_columns(path), str(path))
    stats = stats if stats is not None else ReplayStats()
    ctx = ChunkContext(mapping, _file_key(path), label_delay_days)
    stats.in_order, scanned = in_time_order(path, mapping)
    stats.scanned_rows = scanned if stats.in_order else None

    def converted() -> Iterator[pa.Table]:
        for chunk in read_chunks(path):
            good, bad = convert_chunk(chunk, ctx)
            stats.rows += chunk.table.num_rows
            for line, raw, reason in sorted(bad, key=lambda b: b[0]):
                on_bad(line, raw, reason)
            if on_read is not None:
                on_read(chunk.table.num_rows + len(chunk.malformed))
            if good.num_rows:
                yield good

    if stats.in_order:
        for table in converted():
            yield _time_sorted(table)  # already in order; sorting a sorted chunk is the cheap safety net
        return
    yield from _external_sort(converted(), tmp_dir / f"replay-{uuid.uuid4().hex[:12]}", chunk_rows, stats)


def _external_sort(
    tables: Iterator[pa.Table], run_dir: Path, chunk_rows: int, stats: ReplayStats
) -> Iterator[pa.Table]:
    pending: list[pa.Table] = []
    pending_rows = 0
    runs: list[Path] = []

    def spill() -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        run = run_dir / f"run-{len(runs):05d}.parquet"
        pq.write_table(
            _time_sorted(pa.concat_tables(pending)), run, row_group_size=RUN_ROW_GROUP, **RUN_PARQUET
        )
        runs.append(run)

    try:
        for table in tables:
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= chunk_rows:
                spill()
                pending, pending_rows = [], 0
        if not runs:  # the whole file fits the budget: sort it in memory
            if pending:
                yield _time_sorted(pa.concat_tables(pending))
            return
        if pending:
            spill()
        pending = []
        stats.spilled_runs = len(runs)
        batch_rows = max(1024, chunk_rows // (4 * min(len(runs), MERGE_FAN_IN)))
        while len(runs) > MERGE_FAN_IN:  # merge in passes so the fan-in (and memory) stays bounded
            stats.merge_passes += 1
            merged: list[Path] = []
            for i in range(0, len(runs), MERGE_FAN_IN):
                group = runs[i : i + MERGE_FAN_IN]
                out = run_dir / f"pass{stats.merge_passes}-{i // MERGE_FAN_IN:05d}.parquet"
                with pq.ParquetWriter(out, EVENTS_SCHEMA, **RUN_PARQUET) as writer:
                    for table in _merge(group, batch_rows):
                        writer.write_table(table, row_group_size=RUN_ROW_GROUP)
                for run in group:
                    run.unlink()
                merged.append(out)
            runs = merged
        stats.merge_passes += 1
        yield from _merge(runs, batch_rows)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _merge(runs: list[Path], batch_rows: int) -> Iterator[pa.Table]:
    """k-way merge of sorted runs, a batch at a time: every row up to the smallest last key among the
    runs' current batches can go out (no run holds anything smaller), sorted together."""
    readers = [pq.ParquetFile(run).iter_batches(batch_size=batch_rows) for run in runs]

    def pull(i: int) -> pa.Table | None:
        batch = next(readers[i], None)
        return pa.Table.from_batches([batch]) if batch is not None and batch.num_rows else None

    heads = [pull(i) for i in range(len(runs))]
    while True:
        active = [i for i, h in enumerate(heads) if h is not None]
        if not active:
            return
        bound = min((int(heads[i]["ms"][-1].as_py()), int(heads[i]["line"][-1].as_py())) for i in active)
        pieces = []
        for i in active:
            head = heads[i]
            ms, line = _np(head.column("ms")), _np(head.column("line"))
            lo = int(np.searchsorted(ms, bound[0], side="left"))
            hi = int(np.searchsorted(ms, bound[0], side="right"))
            cut = lo + int(np.searchsorted(line[lo:hi], bound[1], side="right"))
            if cut:
                pieces.append(head.slice(0, cut))
            heads[i] = head.slice(cut) if cut < head.num_rows else pull(i)
        yield _time_sorted(pa.concat_tables(pieces))


@dataclass
class ReplayReport:
    rows: int = 0
    delivered: int = 0
    labels: int = 0
    labels_pending: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    first_event_s: float | None = None  # from the start until the first event was handed to the producer
    in_order: bool = True
    spilled_runs: int = 0
    topic: str = ""
    labels_topic: str = ""
    dead_letter_topic: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "delivered": self.delivered,
            "dead_lettered": len(self.bad_rows),
            "labels": self.labels,
            "labels_pending": self.labels_pending,
            "seconds": round(self.seconds, 2),
            "rows_per_s": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
            "first_event_s": None if self.first_event_s is None else round(self.first_event_s, 3),
            "in_order": self.in_order,
            "spilled_runs": self.spilled_runs,
            "topic": self.topic,
            "labels_topic": self.labels_topic,
            "dead_letter_topic": self.dead_letter_topic,
            "bad_lines": [line for line, _ in self.bad_rows[:100]],
        }


def replay_file(
    path: Path,
    mapping: ColumnMapping,
    speed: float = 0.0,
    topic: str | None = None,
    labels_topic: str | None = None,
    dead_letter_topic: str | None = None,
    label_delay_days: float = 30.0,
    settings: Settings | None = None,
    progress: bool = False,
    outbox: LabelOutbox | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ReplayReport:
    """Replay `path` into Kafka while reading it: what was delivered, labelled and dead-lettered."""
    from tqdm import tqdm

    from events.producer import EventProducer

    s = settings or get_settings()
    mapping.check(file_columns(path), str(path))  # a wrong mapping is one line, before any connection
    stats = ReplayStats()
    bad_rows: list[tuple[int, str]] = []
    t0 = time.monotonic()
    now = datetime.now(UTC)
    pending = 0
    first_event_s = None
    with (
        EventProducer(
            s, topic=topic, labels_topic=labels_topic, dead_letter_topic=dead_letter_topic, validate="none"
        ) as producer,
        tqdm(unit="rows", disable=not progress, desc=f"read {path.name}", file=sys.stderr) as bar,
    ):

        def dead_letter(line: int, raw: dict[str, Any], reason: str) -> None:
            producer.send_dead_letter(raw, reason, source=f"replay:{path.name}", line=line)
            bad_rows.append((line, reason))

        sending = False

        def on_read(n: int) -> None:
            if not sending or stats.in_order:
                bar.update(n)

        pace_start = first_ms = None
        for table in ordered_events(
            path,
            mapping,
            dead_letter,
            s.state_dir / "tmp",
            label_delay_days=label_delay_days,
            chunk_rows=chunk_rows,
            stats=stats,
            on_read=on_read,
        ):
            if not sending:
                sending = True
                first_event_s = time.monotonic() - t0
                if stats.in_order:
                    bar.total = stats.scanned_rows
                    bar.set_description(f"replay {path.name} (in time order)")
                else:
                    bar.reset(total=stats.rows)
                    bar.set_description(f"send {path.name} (sorted, {stats.spilled_runs} spilled runs)")
            keys = table.column("key").to_pylist()
            values = table.column("value").to_pylist()
            if speed > 0:
                # time-scaled: event k goes out (its time - the first event's time) / speed after the first
                ms = _np(table.column("ms"))
                if pace_start is None:
                    pace_start, first_ms = time.monotonic(), int(ms[0])
                for key, value, at in zip(keys, values, ms, strict=True):
                    wait = pace_start + (int(at) - first_ms) / 1000 / speed - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    producer.send_records([(key, value)])
            else:
                producer.send_records(zip(keys, values, strict=True))
            due = []
            for raw in pc.drop_null(table.column("label")).to_pylist():
                label = orjson.loads(raw)
                if outbox is not None and datetime.fromisoformat(label["reported_at"]) > now:
                    outbox.add(label)  # not reported yet: published by a later run once due
                else:
                    due.append(label)
            producer.send_labels(due)
            if not stats.in_order:
                bar.update(table.num_rows)
        if outbox is not None:
            with outbox.releasing() as (released, pending):
                producer.send_labels(released)
                producer.flush()
        producer.flush()
        report = ReplayReport(
            rows=stats.rows,
            delivered=producer.stats.events,
            labels=producer.stats.labels,
            labels_pending=pending,
            bad_rows=sorted(bad_rows),
            seconds=time.monotonic() - t0,
            first_event_s=first_event_s,
            in_order=stats.in_order,
            spilled_runs=stats.spilled_runs,
            topic=producer.topic,
            labels_topic=producer.labels_topic,
            dead_letter_topic=producer.dead_letter_topic,
        )
    return report


def allowed_values() -> dict[str, list[str]]:
    """The contract's enums, for the docs and error messages of a mapping."""
    return enum_values()
