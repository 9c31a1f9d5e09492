"""Deterministic synthetic data for the batch layer's tests and benchmark: the shop simulator, landed in Postgres.

There is one generator of synthetic data, `events.simulator.ShopSimulator`. A `SyntheticSpec` names a
simulated shop (its ids all start with `prefix`, its rows carry Kafka topic `topic`, so a test on the shared
database finds exactly its own rows) sized to `total_rows` transactions over `span`
(`analytics.synthetic.sized_config`). Row g is the g-th transaction of its history, so
`insert_transactions(conn, spec, first, last)` lands any range of it, in any number of calls, and the
same spec always lands the same rows. What lands, through the landing's own write path
(`streaming.landing.master`): the contract events in master.transactions at partition g % 6, offset g // 6,
and the simulator's chargebacks (its fraud labels) in master.chargebacks. With `scored`, a stand-in for the
speed layer scores each landed row (a deterministic hash of its id, model version 'synthetic', alerts at
the top 1 %), so the serving views have both halves without running Spark.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any

import psycopg

from analytics.synthetic import sized_config
from events.simulator import ShopSimulator, SimConfig
from events.simulator.reference import upsert_frame
from kernel.db import copy_insert
from streaming.landing.master import CHARGEBACK_COLUMNS, MASTER_COLUMNS, chargeback_row, master_row

PARTITIONS = 6
# Share of a simulated history that is fraud at fraud_rate 1 (measured: ~0.65 % over 60 days of 5,000
# customers); every fraud transaction is charged back, so this turns `chargeback_every` into a fraud rate.
FRAUD_SHARE_AT_RATE_1 = 0.0065
SIZE_MARGIN = 1.1  # size the history a little above total_rows, so its first total_rows rows exist


@dataclass(frozen=True)
class SyntheticSpec:
    prefix: str  # every id starts with it (tests filter on it); letters, digits, '_', '.', '-'
    topic: str  # kafka_topic of the rows (unique per test)
    n_customers: int = 5_000
    n_merchants: int = 200
    n_products: int = 2_000
    start_time: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    span: timedelta = timedelta(days=60)
    total_rows: int = 1_000_000  # rows 0..total_rows-1 exist; the history is sized to hold them in `span`
    chargeback_every: int = 211  # about one chargeback (a charged-back fraud) per this many transactions
    scored: bool = True  # also write the speed layer's rows for them
    seed: int = 7

    def sim_config(self) -> SimConfig:
        base = SimConfig(
            seed=self.seed,
            n_customers=self.n_customers,
            n_products=self.n_products,
            n_merchants=self.n_merchants,
            days=self.span / timedelta(days=1),
            start=self.start_time,
            fraud_rate=1.0 / (self.chargeback_every * FRAUD_SHARE_AT_RATE_1),
            namespace=self.prefix,
        )
        return sized_config(base, self.total_rows * SIZE_MARGIN)


class _History:
    """A spec's simulated history read forward, row by row (callers land consecutive ranges)."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.sim = ShopSimulator(spec.sim_config())
        self._lock = threading.Lock()
        self._restart()

    def _restart(self) -> None:
        self._events: Iterator[tuple[dict[str, Any], dict[str, Any] | None]] = self.sim.history(
            max_events=self.spec.total_rows
        )
        self._next = 0

    def rows(self, first: int, last: int) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """(event, label) of rows first..last; a range before the last one read restarts the history."""
        if not 0 <= first <= last < self.spec.total_rows:
            raise ValueError(f"rows {first}..{last} are outside 0..{self.spec.total_rows - 1} of the spec")
        with self._lock:
            if first < self._next:
                self._restart()
            skip = first - self._next
            out = list(islice(self._events, skip, skip + last - first + 1))
            self._next = first + len(out)
        if len(out) < last - first + 1:
            raise ValueError(
                f"the simulated history of {self.spec.prefix!r} ends at row {first + len(out) - 1}, "
                f"before row {last}; raise total_rows"
            )
        return out


@lru_cache(maxsize=4)
def _history(spec: SyntheticSpec) -> _History:
    return _History(spec)


SCORES_SQL = """
INSERT INTO speed.scored_transactions (
    transaction_id, customer_id, merchant_id, terminal_id, event_time, currency, amount, payment_method,
    channel, device_type, ip_country, n_items, fraud_score, is_alert, model_version, kafka_partition,
    kafka_offset, kafka_timestamp, batch_id)
SELECT t.transaction_id, t.customer_id, t.merchant_id, t.terminal_id, t.event_time, t.currency, t.amount,
       t.payment_method, t.channel, t.device_type, t.ip_country, jsonb_array_length(t.line_items),
       (abs(hashtext(t.transaction_id)::bigint) %% 1000) / 1000.0,
       (abs(hashtext(t.transaction_id)::bigint) %% 1000) >= 990,
       'synthetic', t.kafka_partition, t.kafka_offset, t.kafka_timestamp, 0
FROM master.transactions t
WHERE t.kafka_topic = %(topic)s AND t.kafka_offset BETWEEN %(first_offset)s AND %(last_offset)s
ON CONFLICT (transaction_id) DO NOTHING
"""

ALERTS_SQL = """
INSERT INTO speed.fraud_alerts (transaction_id, customer_id, event_time, amount, fraud_score, threshold,
                                model_version, reasons)
SELECT s.transaction_id, s.customer_id, s.event_time, s.amount, s.fraud_score, 0.99, s.model_version,
       jsonb_build_array(jsonb_build_object('feature', 'amount', 'value', s.amount, 'baseline', 42,
                                            'text', 'amount far above the customer''s usual'))
FROM speed.scored_transactions s
WHERE s.is_alert AND s.transaction_id LIKE %(like)s
ON CONFLICT (transaction_id) DO NOTHING
"""


def insert_transactions(conn: psycopg.Connection, spec: SyntheticSpec, first: int, last: int) -> int:
    """Land transactions number first..last (inclusive) of `spec`, plus their chargebacks and speed rows.

    Commits once; returns the number of transactions inserted (0 for rows already landed). Row g gets
    kafka_offset g // 6 on partition g % 6, so ranges from separate calls never collide.
    """
    pairs = _history(spec).rows(first, last)
    tx_rows, cb_rows = [], []
    for g, (event, label) in enumerate(pairs, start=first):
        partition, offset = g % PARTITIONS, g // PARTITIONS
        tx_rows.append(master_row(event, spec.topic, partition, offset))
        if label is not None:
            cb_rows.append(chargeback_row(label, spec.topic + ".chargebacks", partition, offset))
    offsets = {"topic": spec.topic, "first_offset": first // PARTITIONS, "last_offset": last // PARTITIONS}
    with conn.cursor() as cur:
        inserted = copy_insert(cur, "master.transactions", MASTER_COLUMNS, tx_rows)
        if cb_rows:
            copy_insert(cur, "master.chargebacks", CHARGEBACK_COLUMNS, cb_rows)
        if spec.scored:
            cur.execute(SCORES_SQL, offsets)
            cur.execute(ALERTS_SQL, {"like": spec.prefix + "%"})
    conn.commit()
    return inserted


def insert_reference(conn: psycopg.Connection, spec: SyntheticSpec, every: int = 1) -> None:
    """The simulator's reference rows (customers as of the end of the span, merchants with their terminals,
    products) for every `every`-th id of `spec`; commits.

    every > 1 leaves the other ids unknown to reference data, which the dimensions must absorb as inferred
    members (as they must for late-arriving reference data).
    """
    sim = _history(spec).sim
    merchants = sim.merchants.iloc[::every]
    frames = {
        "customers": sim.customers_as_of(sim.end).iloc[::every],
        "products": sim.products.iloc[::every],
        "merchants": merchants,
        "terminals": sim.terminals[sim.terminals.merchant_id.isin(merchants.merchant_id)],
    }
    for table, df in frames.items():
        upsert_frame(conn, table, df)
    conn.commit()
