"""Helpers of the reliability suite: fresh events, paced producing, counting own rows, stream subprocesses,
private brokers/databases, and the fuzzer of malformed payloads.

Builds on the speed layer's test helpers (tests/streaming/support.py) instead of copying them.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench.harness import ecom_cmd as ecom_cmd  # the subprocess helpers live with the benchmarks' (soak)
from bench.harness import kill9 as kill9
from bench.harness import start as start
from bench.harness import stop as stop
from bench.harness import tree_rss_mb as tree_rss_mb
from events.contract import validate_transaction
from kernel.db import connect
from kernel.settings import REPO_ROOT, Settings, load_settings
from tests.streaming.support import RecordSender, make_events

# ---------------------------------------------------------------------------------------------------------
# events and producing
# ---------------------------------------------------------------------------------------------------------


def fresh_events(n: int, seed: int, spacing_ms: float = 5.0, **kw: Any) -> list[dict[str, Any]]:
    """Contract-valid events whose event times end now, `spacing_ms` apart (inside the stream's watermark)."""
    events = make_events(n, seed=seed, **kw)
    start = datetime.now(UTC) - timedelta(milliseconds=spacing_ms * n)
    for i, e in enumerate(events):
        e["event_time"] = (start + timedelta(milliseconds=spacing_ms * i)).isoformat()
    return events


def producer(settings: Settings | str) -> RecordSender:
    """A producer that rides out a broker restart (librdkafka retries until message.timeout.ms)."""
    bootstrap = settings if isinstance(settings, str) else settings.kafka.bootstrap_servers
    return RecordSender(bootstrap, **{"request.timeout.ms": 60_000, "message.timeout.ms": 300_000})


def send_events(prod: RecordSender, topic: str, events: list[dict[str, Any]]) -> None:
    for e in events:
        prod.send(topic, key=e["customer_id"].encode(), value=json.dumps(e).encode())
    prod.flush()


class PacedProducer(threading.Thread):
    """Sends events at about `rate` per second in a background thread (the stream runs meanwhile)."""

    def __init__(
        self, settings: Settings | str, topic: str, events: list[dict[str, Any]], rate: float
    ) -> None:
        super().__init__(daemon=True)
        self.settings, self.topic, self.events, self.rate = settings, topic, events, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            prod = producer(self.settings)
            chunk = max(1, int(self.rate / 10))
            t0 = time.monotonic()
            for i in range(0, len(self.events), chunk):
                send_events(prod, self.topic, self.events[i : i + chunk])
                self.sent = min(len(self.events), i + chunk)
                ahead = self.sent / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            prod.close()
        except BaseException as exc:  # surfaced by the test
            self.error = exc


# ---------------------------------------------------------------------------------------------------------
# counting one test's own rows
# ---------------------------------------------------------------------------------------------------------


def speed_rows(ids: list[str], settings: Settings | None = None) -> tuple[int, int]:
    """(count, count distinct) of these transaction ids in speed.scored_transactions."""
    with connect(settings) as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT transaction_id) FROM speed.scored_transactions "
            "WHERE transaction_id = ANY(%s)",
            (ids,),
        ).fetchone()


def master_rows(ids: list[str], settings: Settings | None = None) -> tuple[int, int]:
    with connect(settings) as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT transaction_id) FROM master.transactions WHERE transaction_id = ANY(%s)",
            (ids,),
        ).fetchone()


def batch_accounting(query_name: str, ids: list[str], settings: Settings | None = None) -> dict[str, int]:
    """What the committed batches of one query say they wrote, beside what is in the tables for these ids.

    Both speed.batch_commits.rows_written and ops.stream_batches.rows_written count scored rows (alert rows
    are a view of scored rows and are not counted); the alerts of these ids are returned for the record.
    """
    with connect(settings) as conn:
        markers = conn.execute(
            "SELECT coalesce(sum(rows_written), 0) FROM speed.batch_commits WHERE query_name = %s",
            (query_name,),
        ).fetchone()[0]
        metrics = conn.execute(
            "SELECT coalesce(sum(rows_written), 0) FROM ops.stream_batches WHERE query_name = %s",
            (query_name,),
        ).fetchone()[0]
        alerts = conn.execute(
            "SELECT count(*) FROM speed.fraud_alerts WHERE transaction_id = ANY(%s)", (ids,)
        ).fetchone()[0]
    return {"markers": int(markers), "metrics": int(metrics), "alerts": int(alerts)}


def wait_for(predicate: Callable[[], bool], timeout: float, every: float = 1.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return True
        except Exception:  # a database being restarted: keep waiting
            pass
        time.sleep(every)
    return predicate()


# ---------------------------------------------------------------------------------------------------------
# stream subprocesses
# ---------------------------------------------------------------------------------------------------------


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket of a process tree."""
    root = psutil.Process(pid)
    out = []
    for p in [root, *root.children(recursive=True)]:
        try:
            out += [
                (c.laddr.ip, c.laddr.port)
                for c in p.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            ]
        except psutil.Error:
            pass
    return out


def is_loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------------------
# private services (never restart the shared ones)
# ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_service(name: str, shared: Settings, monkeypatch, tag: str) -> Iterator[tuple[Settings, Any]]:
    """Settings with a private state folder and free ports, and the one `name` service started from it.

    Everything else (MLflow, the other services) stays the shared stack's. The service is stopped and its
    folder removed at the end.
    """
    import shutil

    from stack import services as stack_mod

    state = REPO_ROOT / ".local" / "test-stacks" / f"{tag}-{os.getpid()}-{free_port()}"
    state.mkdir(parents=True)
    env = {
        "ECOM_STATE_DIR": str(state),
        "ECOM_PG_PORT": str(free_port()) if name == "postgres" else str(shared.postgres.port),
        "ECOM_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"
        if name == "kafka"
        else shared.kafka.bootstrap_servers,
        "ECOM_KAFKA_CONTROLLER_PORT": str(free_port()),
        "ECOM_KAFKA_HEAP": "384m",
        "MLFLOW_TRACKING_URI": shared.mlflow.tracking_uri,
    }
    with monkeypatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        if name == "postgres":
            m.delenv("ECOM_PG_PASSWORD", raising=False)  # a fresh local secret in the private folder
        else:
            # the shared Postgres: its owner's and its component roles' passwords, not fresh local secrets
            m.setenv("ECOM_PG_PASSWORD", shared.postgres.password)
            for component, cred in shared.postgres.roles.items():
                m.setenv(f"ECOM_{component.upper()}_PG_PASSWORD", cred.password)
        s = load_settings()
    svc = next(x for x in stack_mod.services(s) if x.name == name)
    try:
        svc.start()
        assert wait_for(svc.healthy, 120, 0.5), (
            f"private {name} did not start: {stack_mod.log_tail(svc.log_file)}"
        )
        if name == "postgres":
            svc.after_healthy()  # databases + migrations
        yield s, svc
    finally:
        svc.stop()
        shutil.rmtree(state, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# the fuzzer: malformed payloads of every kind the issue names, each one rejected by the contract
# ---------------------------------------------------------------------------------------------------------


def _mutations(rng: random.Random) -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    def set_(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda e: {**e, field: value}

    def drop(e: dict[str, Any]) -> dict[str, Any]:
        e = dict(e)
        del e[rng.choice(sorted(e))]
        return e

    def item(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda e: {**e, "line_items": [{**e["line_items"][0], field: value}]}

    return [
        ("wrong type: amount as text", set_("amount", "12.50")),
        ("wrong type: amount as bool", set_("amount", True)),
        ("wrong type: line_items as string", set_("line_items", "P001x2")),
        ("wrong type: quantity as text", item("quantity", "two")),
        ("wrong type: schema_version as text", set_("schema_version", "1")),
        ("missing field", drop),
        ("missing field: transaction_id", lambda e: {k: v for k, v in e.items() if k != "transaction_id"}),
        ("null field", set_("merchant_id", None)),
        ("huge value: amount", set_("amount", 1e300)),
        ("huge value: quantity beyond int64", item("quantity", 10**30)),
        ("huge value: long customer_id", set_("customer_id", "C" * 5000)),
        ("huge value: unit_price", item("unit_price", 9.9e99)),
        ("out of range: negative amount", set_("amount", -5.0)),
        ("out of range: latitude", set_("ip_lat", 123.4)),
        ("bad enum: currency", set_("currency", "XBT")),
        ("bad format: event_time", set_("event_time", "yesterday at noon")),
        ("bad pattern: ip_country", set_("ip_country", "france")),
        ("empty line_items", set_("line_items", [])),
        ("unknown schema version", set_("schema_version", 2)),
        ("unknown schema version: 99", set_("schema_version", 99)),
        ("unknown field", set_("coupon_code", "FREE")),
    ]


# JSON of another type where the contract wants a string: Spark's from_json keeps the raw JSON text in a
# StringType field, so the stream currently accepts these (a known hole, see test_string_fields_*).
STRING_FIELD_WRONG_TYPES = [
    ("customer_id", {"id": 1}),
    ("merchant_id", 12345),
    ("device_id", True),
    ("ip_city", ["Paris"]),
]

RAW_KINDS = ["invalid UTF-8", "not JSON", "JSON array", "JSON scalar", "JSON null", "empty", "tombstone"]


def _raw(kind: str, e: dict[str, Any], rng: random.Random) -> bytes | None:
    body = json.dumps(e).encode()
    if kind == "invalid UTF-8":
        cut = rng.randrange(1, len(body) - 1)
        return body[:cut] + bytes([rng.choice([0xFF, 0xFE, 0xC3, 0x80])]) + body[cut:]
    if kind == "not JSON":
        return body[: rng.randrange(1, len(body) - 1)]  # truncated
    if kind == "JSON array":
        return json.dumps([e]).encode()
    if kind == "JSON scalar":
        return str(rng.randint(0, 10**6)).encode()
    if kind == "JSON null":
        return b"null"
    if kind == "empty":
        return b""
    if kind == "tombstone":
        return None
    raise ValueError(kind)


def fuzz_payloads(base: list[dict[str, Any]], n: int, seed: int) -> list[tuple[str, bytes | None]]:
    """`n` malformed payloads (kind, bytes or None for a Kafka tombstone), cycling through every kind.

    Each JSON mutation is checked against the contract's own validator, so "malformed" means what the
    contract says, not what this fuzzer believes.
    """
    rng = random.Random(seed)
    muts = _mutations(rng)
    kinds = [m[0] for m in muts] + RAW_KINDS
    out: list[tuple[str, bytes | None]] = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        e = dict(base[i % len(base)])
        e["transaction_id"] = f"{e['transaction_id']}-fz{i}"
        if kind in RAW_KINDS:
            out.append((kind, _raw(kind, e, rng)))
            continue
        mutated = dict(muts)[kind](e)
        assert validate_transaction(json.loads(json.dumps(mutated))), (
            f"fuzz kind {kind!r} produced a valid event"
        )
        out.append((kind, json.dumps(mutated).encode()))
    return out
