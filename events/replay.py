"""Replay a CSV or Parquet file of real transactions into Kafka, through the same contract.

A column mapping (flags or a small YAML) says which column holds the customer, merchant/terminal,
amount, timestamp and, optionally, product, quantity and a fraud label. Fields the file does not have
get documented defaults. Each row becomes a contract event; a row that cannot (unparseable amount or
time, a value the contract forbids) is reported with its line number and sent to the dead-letter topic
with the raw row and the reason, never dropped. Mapped fraud labels become chargebacks on the labels
topic, `label_delay_days` after the transaction.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml

from events.contract import enum_values, validate_transaction
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
    "ip_country": "ZZ",
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


def read_table(path: Path) -> tuple[pd.DataFrame, list[int], list[tuple[int, dict[str, Any], str]]]:
    """(rows as raw values, each row's line number, malformed lines as (line, raw, reason)).

    CSV is read with the csv module rather than pandas so that a line with the wrong number of fields
    becomes a reported, dead-lettered row instead of failing the whole file; Parquet rows are numbered
    from 1.
    """
    if not path.exists():
        raise EcomError(f"file {path} does not exist")
    if not path.is_file():
        raise EcomError(f"{path} is not a file")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise EcomError(
                f"cannot read {path} as Parquet ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
        df = df.astype(object).where(df.notna(), None)
        return df, list(range(1, len(df) + 1)), []
    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: list[tuple[int, dict[str, Any], str]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise EcomError(f"{path} is empty: a CSV needs a header line naming its columns")
            previous = reader.line_num
            for record in reader:
                line, previous = previous + 1, reader.line_num  # a quoted field may span lines
                if not record:
                    continue  # an empty line holds no row
                if len(record) != len(header):
                    malformed.append(
                        (line, {"fields": record}, f"expected {len(header)} fields, found {len(record)}")
                    )
                    continue
                rows.append(record)
                lines.append(line)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EcomError(f"cannot read {path} as CSV ({type(exc).__name__}: {str(exc)[:120]})") from None
    return pd.DataFrame(rows, columns=header, dtype=object), lines, malformed


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
            ts = datetime.fromtimestamp(epoch / 1000 if epoch > 1e11 else epoch, UTC)
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


@dataclass
class ReplayReport:
    rows: int = 0
    delivered: int = 0
    labels: int = 0
    labels_pending: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
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
            "topic": self.topic,
            "labels_topic": self.labels_topic,
            "dead_letter_topic": self.dead_letter_topic,
            "bad_lines": [line for line, _ in self.bad_rows[:100]],
        }


def convert_rows(
    df: pd.DataFrame,
    mapping: ColumnMapping,
    lines: Sequence[int] | int,
    file_key: str,
    label_delay_days: float,
) -> tuple[list[tuple[int, dict[str, Any], dict[str, Any] | None]], list[tuple[int, dict[str, Any], str]]]:
    """Pure part of the replay: ([(line, event, label)], [(line, raw row, reason)])."""
    tz = ZoneInfo(mapping.timezone)
    good, bad = [], []
    for i, row in enumerate(df.to_dict(orient="records")):
        line = lines + i if isinstance(lines, int) else lines[i]
        raw = {
            k: (None if v is None else (v if isinstance(v, str | int | float | bool) else str(v)))
            for k, v in row.items()
        }
        try:
            event, is_fraud = row_to_event(row, mapping, f"replay-{file_key}-{line}", tz)
        except ValueError as exc:
            bad.append((line, raw, str(exc)))
            continue
        errors = validate_transaction(event)
        if errors:
            bad.append((line, raw, "; ".join(errors)))
            continue
        label = None
        if is_fraud:
            reported = datetime.fromisoformat(event["event_time"]) + timedelta(days=label_delay_days)
            label = {
                "schema_version": 1,
                "transaction_id": event["transaction_id"],
                "customer_id": event["customer_id"],
                "reported_at": reported.isoformat(timespec="milliseconds"),
                "fraud_scenario": "reported",
                "amount": event["amount"],
            }
        good.append((line, event, label))
    good.sort(key=lambda g: g[1]["event_time"])  # a replay is a stream: in event-time order
    return good, bad


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
) -> ReplayReport:
    """Replay `path` into Kafka: what was delivered, labelled and dead-lettered (with line numbers)."""
    from tqdm import tqdm

    from events.producer import EventProducer

    df, lines, malformed = read_table(path)
    mapping.check(list(df.columns), str(path))
    file_key = hashlib.blake2b(path.read_bytes(), digest_size=5).hexdigest()
    good, bad = convert_rows(df, mapping, lines, file_key, label_delay_days)
    bad = sorted(malformed + bad, key=lambda b: b[0])
    s = settings or get_settings()
    t0 = time.monotonic()
    now = datetime.now(UTC)
    pending = 0
    with EventProducer(
        s, topic=topic, labels_topic=labels_topic, dead_letter_topic=dead_letter_topic, validate="none"
    ) as producer:
        for line, raw, reason in bad:
            producer.send_dead_letter(raw, reason, source=f"replay:{path.name}", line=line)
        first_event_time = datetime.fromisoformat(good[0][1]["event_time"]) if good else None
        for _, event, label in tqdm(good, unit="ev", disable=not progress):
            if speed > 0:
                # time-scaled: event k goes out (its time - the first event's time) / speed after the start
                offset = (
                    datetime.fromisoformat(event["event_time"]) - first_event_time
                ).total_seconds() / speed
                wait = t0 + offset - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            producer.send_events([event])
            if label is not None:
                if outbox is not None and datetime.fromisoformat(label["reported_at"]) > now:
                    outbox.add(label)  # not reported yet: published by a later run once due
                else:
                    producer.send_labels([label])
        if outbox is not None:
            with outbox.releasing() as (due, pending):
                producer.send_labels(due)
                producer.flush()
        producer.flush()
        report = ReplayReport(
            rows=len(df),
            delivered=producer.stats.events,
            labels=producer.stats.labels,
            labels_pending=pending,
            bad_rows=[(line, reason) for line, _, reason in bad],
            seconds=time.monotonic() - t0,
            topic=producer.topic,
            labels_topic=producer.labels_topic,
            dead_letter_topic=producer.dead_letter_topic,
        )
    return report


def allowed_values() -> dict[str, list[str]]:
    """The contract's enums, for the docs and error messages of a mapping."""
    return enum_values()
