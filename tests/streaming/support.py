"""Helpers of the speed-layer tests: unique topics, events, Kafka producing, test models in the registry."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from confluent_kafka import Producer

from events.contract import validate_transaction
from kernel.kafka import QUIET, create_topics
from kernel.settings import Settings


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def make_events(
    n: int, seed: int = 0, n_customers: int = 40, start: datetime | None = None
) -> list[dict[str, Any]]:
    """Contract-valid transactions, a few seconds apart, ending now (ids unique per call)."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    start = start or datetime.now(UTC) - timedelta(seconds=2 * n)
    events = []
    for i in range(n):
        c = rng.randrange(n_customers)
        qty = rng.randint(1, 3)
        price = round(rng.lognormvariate(3.0, 0.6), 2)
        events.append(
            {
                "schema_version": 1,
                "transaction_id": f"tx-{run}-{i:07d}",
                "customer_id": f"C{c:05d}",
                "merchant_id": f"M{c % 9:03d}",
                "terminal_id": f"T{c % 13:03d}",
                "event_time": (start + timedelta(seconds=2 * i)).isoformat(),
                "currency": "EUR",
                "amount": round(qty * price, 2),
                "payment_method": "card",
                "channel": "web",
                "device_id": f"D{c:05d}-{rng.randint(0, 1)}",
                "device_type": "mobile",
                "ip_address": "10.0.0.1",
                "ip_country": "FR",
                "ip_city": "Paris",
                "ip_lat": 48.85 + rng.uniform(-0.1, 0.1),
                "ip_lon": 2.35 + rng.uniform(-0.1, 0.1),
                "line_items": [
                    {"product_id": f"P{rng.randrange(50):03d}", "quantity": qty, "unit_price": price}
                ],
            }
        )
    assert not validate_transaction(events[0])
    return events


def create_topic(settings: Settings, topic: str, partitions: int = 3) -> None:
    k = settings.kafka
    create_topics(k.bootstrap_servers, [topic], partitions, k.replication_factor, exist_ok=False)


class RecordSender:
    """Raw records into Kafka for tests that need payloads the project's producer would refuse: keyed by
    Kafka's murmur2 partitioner (as Spark and the EventProducer), acks=all, idempotent; `flush` raises
    unless the broker acknowledged every record."""

    def __init__(self, bootstrap: str, **conf: Any) -> None:
        self.failed: list[str] = []
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "on_delivery": self._on_delivery,
                **QUIET,
                **conf,
            }
        )

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed.append(err.str())

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key)
                return
            except BufferError:
                self._producer.poll(0.05)

    def flush(self, timeout: float = 300) -> None:
        remaining = self._producer.flush(timeout)
        assert not remaining and not self.failed, f"{remaining} unacknowledged, failed: {self.failed[:3]}"

    def close(self) -> None:
        self.flush()


def produce(settings: Settings, topic: str, events: list[dict[str, Any]], raw: list[bytes] = ()) -> None:
    """Send events (keyed by customer) and raw payloads; waits until the broker acknowledged all."""
    producer = RecordSender(settings.kafka.bootstrap_servers)
    for e in events:
        producer.send(topic, key=e["customer_id"].encode(), value=json.dumps(e).encode())
    for payload in raw:
        producer.send(topic, value=payload)
    producer.flush()


def register_test_versions(settings: Settings, model_name: str, n_versions: int = 1) -> list[str]:
    """Train small pipelines on generated events and register them as versions of `model_name` through the
    project's registry code (ml.registry.register); the first becomes champion. Returns the versions."""
    import mlflow

    from ml import registry
    from ml.data import input_example
    from ml.features import history_context
    from ml.model import build_pipeline, score

    registry.configure(settings)
    mlflow.set_experiment(f"{model_name}_tests")
    events = make_events(1500, seed=1, start=datetime.now(UTC) - timedelta(days=2))
    import pandas as pd

    tx = pd.DataFrame(events)
    tx["event_time"] = pd.to_datetime(tx["event_time"], utc=True)
    enriched, _ = history_context(tx)
    versions = []
    for k in range(n_versions):
        pipe = build_pipeline({"n_estimators": 30, "max_samples": 256, "random_state": 11 + k}).fit(enriched)
        threshold = float(np.quantile(score(pipe, enriched), 0.97))
        with mlflow.start_run(run_name=f"speed-test-{k}"):
            version = registry.register(
                pipe,
                input_example(enriched),
                {"threshold": str(threshold), "source": "tests/streaming"},
                settings,
                model_name,
            )
        versions.append(version)
    registry.set_alias(versions[0], settings, model_name)
    return versions


# glibc's libm (which Python's math calls) is not correctly rounded, the JVM's RoundedMath is: a haversine
# distance may differ in its last bits on about 1 row in 1,000 (3 ulp seen)
ULP_TOLERANCE = 4


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between two float64 arrays (NaN against NaN is 0)."""
    both = ~(np.isnan(a) | np.isnan(b))
    out = np.zeros(len(a), dtype=np.int64)
    out[both] = np.abs(a[both].view(np.int64) - b[both].view(np.int64))
    out[np.isnan(a) != np.isnan(b)] = np.iinfo(np.int64).max
    return out
