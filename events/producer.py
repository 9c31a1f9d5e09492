"""The edge of the platform: events, chargeback labels and dead letters into Kafka (confluent-kafka).

Transactions are keyed by customer_id (so one customer's events stay ordered in one partition; the
partition is Kafka's murmur2 choice, as the Java client and Spark make it), JSON encoded with orjson,
batched (linger + large batches), lz4-compressed, acks=all with retries and the idempotent producer (a
retried batch is not written twice). What fails the contract at the edge goes to the dead-letter topic
with the raw payload and the reason, never dropped.
"""

from __future__ import annotations

import fcntl
import gc
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer

from events.contract import validate_chargeback, validate_transaction
from kernel.errors import EcomError
from kernel.kafka import QUIET, broker_down, topic_partitions
from kernel.settings import Settings, get_settings

# Producer tuning (measured in docs/events.md), librdkafka's names: a short linger and big batches let lz4
# compress whole batches; acks=all + idempotence make retries safe (librdkafka retries until
# message.timeout.ms). `murmur2_random` is Kafka's default partitioner (librdkafka's own default hashes
# keys with CRC32, which would put a customer on another partition than Spark and the Java client do).
PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "partitioner": "murmur2_random",
    "linger.ms": 20,
    "batch.size": 1024 * 1024,
    "batch.num.messages": 20_000,
    "compression.type": "lz4",
    "message.max.bytes": 8 * 1024 * 1024,
    "request.timeout.ms": 30_000,
    "message.timeout.ms": 120_000,  # a record not acknowledged within 2 minutes is reported as failed
    # the local queue bounds memory: produce() waits for room once 100k records / 128 MiB are in flight
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 128 * 1024,
    "delivery.report.only.error": True,  # no Python callback per acknowledged record
    **QUIET,
}
CONNECT_TIMEOUT_S = 5  # an unreachable broker fails in seconds


LEGAL_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def topic_name_error(name: str) -> str | None:
    """Why `name` is not a legal Kafka topic name (None when it is)."""
    if not LEGAL_TOPIC.fullmatch(name) or name in (".", ".."):
        return f"{name!r} is not a legal Kafka topic name (1-249 of letters, digits, '.', '_', '-')"
    return None


@dataclass
class ProduceStats:
    events: int = 0
    fraud_events: int = 0
    labels: int = 0
    dead_letters: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {"errors": self.errors[:5]}


def dead_letter_record(raw: Any, reason: str, source: str, line: int | None = None) -> dict[str, Any]:
    """The dead-letter payload: the raw input as it came, why it was refused, and where it came from."""
    return {
        "raw": raw,
        "reason": reason,
        "source": source,
        "line": line,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
    }


class EventProducer:
    """Produces to the transactions, labels and dead-letter topics; topics default to the settings.

    `overrides` are librdkafka settings on top of PRODUCER_CONFIG (e.g. `**{"linger.ms": 5}`).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        topic: str | None = None,
        labels_topic: str | None = None,
        dead_letter_topic: str | None = None,
        validate: str = "sample",
        sample_every: int = 997,
        **overrides: Any,
    ) -> None:
        s = settings or get_settings()
        self.bootstrap = s.kafka.bootstrap_servers
        self.topic = topic or s.kafka.topic_transactions
        self.labels_topic = labels_topic or s.kafka.topic_labels
        self.dead_letter_topic = dead_letter_topic or s.kafka.topic_dead_letter
        for name in (self.topic, self.labels_topic, self.dead_letter_topic):
            problem = topic_name_error(name)
            if problem:
                raise EcomError(f"{problem}; pass a valid --topic/--labels-topic/--dead-letter-topic")
        if validate not in ("all", "sample", "none"):
            raise EcomError(f"validate must be all, sample or none, not {validate!r}")
        self.validate = validate
        self.sample_every = max(1, sample_every)
        self.stats = ProduceStats()
        self._count = 0
        self._producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "client.id": "ecom-generator",
                "on_delivery": self._on_delivery,
                **PRODUCER_CONFIG,
                **overrides,
            }
        )
        try:
            partitions = topic_partitions(self._producer, CONNECT_TIMEOUT_S)
        except KafkaException as exc:
            raise broker_down(self.bootstrap, exc.args[0].str()) from exc
        for t in (self.topic, self.labels_topic, self.dead_letter_topic):
            if t not in partitions:
                raise EcomError(
                    f"Kafka topic {t!r} not found on {self.bootstrap}; create it (`ecom up` creates the "
                    "default topics) or pass an existing one with --topic/--labels-topic/--dead-letter-topic"
                )

    def _on_delivery(self, err: Any, msg: Any) -> None:
        # called (from poll/flush) only for records that failed: delivery.report.only.error
        if err is not None:
            self.stats.failed += 1
            if len(self.stats.errors) < 20:
                self.stats.errors.append(f"{err.name()}: {err.str()}")

    def _produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        """One record into librdkafka's queue, waiting for room when the queue is full."""
        while True:
            try:
                self._producer.produce(topic, value, key)
                return
            except BufferError:
                self._producer.poll(0.05)  # the queue drains as the broker acknowledges

    def send_events(self, events: Iterable[dict[str, Any]]) -> int:
        """Validate (per the `validate` policy), encode and send; invalid events go to the dead letters."""
        return self.send_records([(str(ev.get("customer_id", "")).encode(), ev) for ev in events])

    def send_records(self, records: Iterable[tuple[bytes, Any]]) -> int:
        """Send (key, event) pairs where the event is a dict or its JSON bytes (the simulator's fast path)."""
        sent = 0
        topic = self.topic
        produce = self._producer.produce
        dumps = orjson.dumps
        check = self.validate
        every = self.sample_every
        count = self._count
        raw_types = (bytes, bytearray)
        for key, ev in records:
            count += 1
            if check == "all" or (check == "sample" and count % every == 0):
                parsed = orjson.loads(ev) if isinstance(ev, raw_types) else ev
                errors = validate_transaction(parsed)
                if errors:
                    self.send_dead_letter(parsed, "; ".join(errors), source="producer")
                    continue
            value = ev if isinstance(ev, raw_types) else dumps(ev)
            try:
                produce(topic, value, key)
            except BufferError:
                self._produce(topic, value, key)
            sent += 1
        self._count = count
        self.stats.events += sent
        self._producer.poll(0)  # serve delivery reports (failures only)
        return sent

    def send_labels(self, labels: Iterable[dict[str, Any]]) -> int:
        sent = 0
        for label in labels:
            errors = validate_chargeback(label)
            if errors:
                self.send_dead_letter(label, "chargeback: " + "; ".join(errors), source="labels")
                continue
            self._produce(self.labels_topic, orjson.dumps(label), str(label["customer_id"]).encode())
            sent += 1
        self.stats.labels += sent
        return sent

    def send_dead_letter(self, raw: Any, reason: str, source: str, line: int | None = None) -> None:
        record = dead_letter_record(raw, reason, source, line)
        key = None
        if isinstance(raw, dict) and raw.get("customer_id") not in (None, ""):
            key = str(raw["customer_id"]).encode()
        value = orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS)
        self._produce(self.dead_letter_topic, value, key)
        self.stats.dead_letters += 1

    def flush(self, timeout: float | None = 60) -> None:
        """Wait until the broker acknowledged every record; one line when it did not."""
        remaining = self._producer.flush(-1 if timeout is None else timeout)
        if remaining:
            raise EcomError(
                f"Kafka at {self.bootstrap} did not acknowledge {remaining} records in {timeout}s; "
                "check `ecom status` and rerun"
            )
        if self.stats.failed:
            raise EcomError(
                f"{self.stats.failed} records were not acknowledged by {self.bootstrap} "
                f"(first: {self.stats.errors[0]}); check `ecom status` and rerun"
            )

    def close(self, timeout: float = 30) -> None:
        """Deliver what is queued (up to `timeout` s), then let the client go."""
        self._producer.flush(timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def paced(
    chunks: Iterable[tuple[list, list]], rate: float, tick_s: float = 0.2
) -> Iterator[tuple[list, list]]:
    """Re-chunk (events, labels) pairs so they come out at `rate` events/s: a slice of rate x tick_s events
    every `tick_s`. Slices span chunk boundaries (a simulated day smaller than a slice must not cost a
    whole tick: that capped the benchmark's history workload at ~5,000 events/s whatever --rate said), and
    a chunk's labels go out with the slice that carries the chunk's last event, never before it."""
    per_tick = max(1, int(round(rate * tick_s)))
    next_tick = time.monotonic()
    events_buf: list = []
    pending: deque[tuple[int, list]] = deque()  # (events that must be out first, labels)
    seen = sent = 0

    def release() -> list:
        out: list = []
        while pending and pending[0][0] <= sent:
            out.extend(pending.popleft()[1])
        return out

    for events, labels in chunks:
        events_buf.extend(events)
        seen += len(events)
        if labels:
            pending.append((seen, list(labels)))
        while len(events_buf) >= per_tick:
            wait = next_tick - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            next_tick += tick_s
            out, events_buf = events_buf[:per_tick], events_buf[per_tick:]
            sent += len(out)
            yield out, release()
    if events_buf or pending:
        wait = next_tick - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sent += len(events_buf)
        yield events_buf, release()


def quiet_gc() -> None:
    """Producing allocates millions of short-lived dicts; freeze the long-lived heap (the simulated
    world) so the cyclic collector stops rescanning it (~15% faster generation, measured)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


class LabelOutbox:
    """Chargebacks that are not due yet (reported_at in the future), kept on disk until they are.

    The history clock produces labels reported after 'now' and the live clock produces labels days
    ahead; both wait here and every later `ecom generate` publishes the ones that have come due.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._new: list[dict[str, Any]] = []

    @classmethod
    def default(cls, settings: Settings | None = None) -> LabelOutbox:
        s = settings or get_settings()
        return cls(s.state_dir / "generator" / "pending_labels.jsonl")

    def add(self, label: dict[str, Any]) -> None:
        self._new.append(label)

    def pending(self) -> list[dict[str, Any]]:
        out = []
        if self.path.exists():
            for line in self.path.read_bytes().splitlines():
                if line.strip():
                    out.append(orjson.loads(line))
        return out + self._new

    @contextmanager
    def releasing(self, now: datetime | None = None) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """`with outbox.releasing() as (due, pending):` send `due` inside the block.

        The file is locked (flock) for the whole read-send-rewrite, so two `ecom generate` runs never
        lose each other's labels, and it is rewritten without the due labels only when the block ends
        without an error: a failed send leaves them pending for the next run (consumers key labels by
        transaction id, so a label published twice is harmless; one never published is a lost label).
        """
        now = now or datetime.now(UTC)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            due, keep = [], []
            for label in self.pending():
                (due if datetime.fromisoformat(label["reported_at"]) <= now else keep).append(label)
            due.sort(key=lambda x: x["reported_at"])
            yield due, len(keep)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in keep))
            tmp.replace(self.path)
            self._new = []

    def release_due(self, now: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
        """(labels due now, sorted by reported_at; how many stay pending on disk), removed from the file
        at once; prefer `releasing()` when the labels are sent afterwards."""
        with self.releasing(now) as (due, pending):
            return due, pending
