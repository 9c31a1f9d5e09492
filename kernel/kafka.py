"""The one Kafka client of the platform (confluent-kafka, i.e. librdkafka): admin calls, offsets, reading a
topic back, and Kafka's murmur2 partition of a key.

Every room talks to Kafka through these helpers or through `events.producer.EventProducer`, so a broker
that is down is one line (naming the bootstrap address and `ecom up`) wherever it is met.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from kernel.errors import EcomError

# librdkafka logs every failed connection attempt to stderr on its own threads; the errors that matter
# come back as exceptions or delivery reports, so only critical log lines are printed
QUIET = {"log_level": 2}


def broker_down(bootstrap: str, exc: BaseException | str) -> EcomError:
    """The one-line error for a broker that cannot be reached."""
    return EcomError(
        f"Kafka broker not reachable at {bootstrap} ({exc}); "
        "start the local stack with `ecom up` (or set ECOM_KAFKA_BOOTSTRAP)"
    )


def admin_client(bootstrap: str, **conf: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "client.id": "ecom-admin", **QUIET, **conf})


def consumer(bootstrap: str, **conf: Any) -> Consumer:
    """A consumer outside any shared group (its own throw-away group id, nothing committed)."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ecom-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **QUIET,
            **conf,
        }
    )


def topic_partitions(client: Any, timeout: float = 10) -> dict[str, int]:
    """Every topic of the cluster and its partition count (`client`: a producer, consumer or admin client).

    Lists all topics rather than asking for one by name: asking for a missing topic by name may create it
    (the broker's auto.create.topics.enable)."""
    meta = client.list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}


def topic_names(bootstrap: str, timeout: float = 5) -> set[str]:
    admin = admin_client(bootstrap)
    try:
        return set(topic_partitions(admin, timeout))
    except KafkaException as exc:
        raise broker_down(bootstrap, exc.args[0].str()) from exc


def create_topics(
    bootstrap: str,
    names: Sequence[str],
    partitions: int,
    replication_factor: int = 1,
    exist_ok: bool = True,
    timeout: float = 30,
) -> list[str]:
    """Create `names` (those that already exist are left alone when `exist_ok`); returns the ones created.
    Returns once the broker's metadata lists them, so a producer started next finds them."""
    admin = admin_client(bootstrap)
    try:
        existing = set(topic_partitions(admin, min(timeout, 10)))
    except KafkaException as exc:
        raise broker_down(bootstrap, exc.args[0].str()) from exc
    missing = [n for n in names if n not in existing]
    if not exist_ok and len(missing) < len(names):
        raise EcomError(f"Kafka topic(s) {sorted(set(names) - set(missing))} already exist on {bootstrap}")
    created = []
    if missing:
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=replication_factor) for n in missing],
            request_timeout=timeout,
        )
        for name, fut in futures.items():
            try:
                fut.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise EcomError(f"could not create Kafka topic {name!r} on {bootstrap}: {exc}") from exc
        deadline = time.monotonic() + timeout
        while set(missing) - set(topic_partitions(admin, timeout)) and time.monotonic() < deadline:
            time.sleep(0.05)
    return created


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 30) -> None:
    """Delete topics (one that is already gone is not an error)."""
    names = list(names)
    if not names:
        return
    admin = admin_client(bootstrap)
    for name, fut in admin.delete_topics(names, request_timeout=timeout, operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise EcomError(f"could not delete Kafka topic {name!r} on {bootstrap}: {exc}") from exc


def end_offsets(
    bootstrap: str, topics: Sequence[str], timeout: float = 15, admin: AdminClient | None = None
) -> dict[str, dict[int, int]]:
    """Per topic, per partition: the log-end offset (records ever written). A missing topic maps to {}."""
    admin = admin or admin_client(bootstrap)
    counts = topic_partitions(admin, timeout)
    wanted = {TopicPartition(t, p): OffsetSpec.latest() for t in topics for p in range(counts.get(t, 0))}
    out: dict[str, dict[int, int]] = {t: {} for t in topics}
    if wanted:
        for tp, fut in admin.list_offsets(wanted, request_timeout=timeout).items():
            out[tp.topic][tp.partition] = fut.result().offset
    return out


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def read_topic(
    bootstrap: str, topic: str, expected: int | None = None, timeout_s: float = 30
) -> list[Record]:
    """Every record of `topic` from the beginning, stopping at `expected` records or at the log end as it
    was when reading started (or after `timeout_s`)."""
    ends = end_offsets(bootstrap, [topic])[topic]
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        records: list[Record] = []
        positions = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if expected is not None and len(records) >= expected:
                break
            if expected is None and all(positions[p] >= end for p, end in ends.items()):
                break
            for msg in c.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    continue
                positions[msg.partition()] = msg.offset() + 1
                records.append(
                    Record(
                        msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.timestamp()[1]
                    )
                )
        return records
    finally:
        c.close()


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of a key (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit int."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    full = length & ~3
    for i in range(0, full, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = length & 3
    if rest >= 3:
        h ^= data[full + 2] << 16
    if rest >= 2:
        h ^= data[full + 1] << 8
    if rest >= 1:
        h ^= data[full]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, n_partitions: int) -> int:
    """Kafka's default partition of a key: the choice the Java client and Spark's Kafka sink make (and
    librdkafka's `murmur2_random` partitioner, which the producer uses)."""
    return (murmur2(key) & 0x7FFFFFFF) % n_partitions
