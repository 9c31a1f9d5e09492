"""Deterministic synthetic data for the batch layer's tests and benchmark, generated inside Postgres.

`generate_series` + hash functions make N contract-valid transactions (with line items, speed-layer
scores, alerts and chargebacks) in seconds, so a 1M-row benchmark spends its time in dbt, not in Python.
Every id carries a caller-chosen prefix and the rows a caller-chosen Kafka topic, so a test on the shared
database can find exactly its own rows. Enumerated values come from the event contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from events.contract import enum_values

COUNTRIES = ["US", "GB", "DE", "FR", "CA", "ES", "IT", "NL"]


@dataclass(frozen=True)
class SyntheticSpec:
    prefix: str  # every id starts with it (tests filter on it)
    topic: str  # kafka_topic of the rows (unique per test)
    n_customers: int = 5_000
    n_merchants: int = 200
    n_products: int = 2_000
    start_time: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    span: timedelta = timedelta(days=60)
    total_rows: int = 1_000_000  # event_time spreads rows 0..total_rows over `span`
    chargeback_every: int = 211  # one chargeback per this many transactions
    scored: bool = True  # also write the speed layer's rows for them


TRANSACTIONS_SQL = """
INSERT INTO master.transactions (
    transaction_id, schema_version, customer_id, merchant_id, terminal_id, event_time, currency, amount,
    payment_method, channel, device_id, device_type, ip_address, ip_country, ip_city, ip_lat, ip_lon,
    line_items, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp)
SELECT
    %(prefix)s || 't' || b.g,
    1,
    %(prefix)s || 'c' || b.cust,
    %(prefix)s || 'm' || b.merch,
    %(prefix)s || 'm' || b.merch || '-t' || (b.h3 %% 3),
    b.event_time,
    (%(currencies)s::text[])[1 + (b.h1 %% 97 = 0)::int],
    li.amount,
    (%(payment_methods)s::text[])[1 + (b.h2 %% cardinality(%(payment_methods)s::text[]))],
    (%(channels)s::text[])[1 + (b.h3 %% cardinality(%(channels)s::text[]))],
    %(prefix)s || 'd' || b.cust || '-' || (b.h1 %% 2),
    (%(device_types)s::text[])[1 + ((b.cust + (b.h1 %% 2)) %% cardinality(%(device_types)s::text[]))],
    '10.' || (b.cust %% 250) || '.' || (b.h2 %% 250) || '.' || (b.h3 %% 250),
    (%(countries)s::text[])[1 + ((b.cust + (b.h1 %% 23 = 0)::int) %% cardinality(%(countries)s::text[]))],
    'city-' || (b.cust %% 50),
    -60 + (b.cust %% 120) + (b.h2 %% 100) / 1000.0,
    -170 + (b.cust %% 340) + (b.h3 %% 100) / 1000.0,
    li.items,
    %(topic)s,
    (b.g %% 6)::int,
    b.g / 6,
    b.event_time
FROM (
    SELECT
        g,
        abs(hashint8(g)::bigint) AS h1,
        abs(hashint8(g + 1000000007)::bigint) AS h2,
        abs(hashint8(g + 2000000014)::bigint) AS h3,
        abs(hashint8(g + 3000000021)::bigint) %% %(n_customers)s AS cust,
        abs(hashint8(g + 4000000028)::bigint) %% %(n_merchants)s AS merch,
        %(start_time)s::timestamptz + make_interval(secs => g * %(seconds_per_row)s) AS event_time
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
) AS b
CROSS JOIN LATERAL (
    SELECT
        jsonb_agg(jsonb_build_object('product_id', %(prefix)s || 'p' || x.product, 'quantity', x.q,
                                     'unit_price', x.unit_price) ORDER BY x.k) AS items,
        sum(x.q * x.unit_price) AS amount
    FROM (
        SELECT
            k,
            (b.h3 + k * 7919) %% %(n_products)s AS product,
            1 + ((b.h1 >> k) %% 3)::int AS q,
            round(1 + ((b.h2 >> (k * 3)) %% 15000) / 100.0, 2) AS unit_price
        FROM generate_series(1, 1 + (b.h2 %% 3)::int) AS k
    ) AS x
) AS li
"""

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

CHARGEBACKS_SQL = """
INSERT INTO master.chargebacks (transaction_id, schema_version, customer_id, reported_at, fraud_scenario,
                                amount, kafka_topic, kafka_partition, kafka_offset)
SELECT t.transaction_id, 1, t.customer_id, t.event_time + interval '3 days', 'card_testing', t.amount,
       %(topic)s || '.chargebacks', t.kafka_partition, t.kafka_offset
FROM master.transactions t
WHERE t.kafka_topic = %(topic)s AND t.kafka_offset BETWEEN %(first_offset)s AND %(last_offset)s
  AND abs(hashtext(t.transaction_id)::bigint) %% %(every)s = 0
ON CONFLICT (transaction_id) DO NOTHING
"""


def insert_transactions(conn: psycopg.Connection, spec: SyntheticSpec, first: int, last: int) -> int:
    """Insert transactions number first..last (inclusive) of `spec`, plus their speed rows and labels.

    Commits once; returns the number of transactions inserted. Row g gets kafka_offset g // 6 on
    partition g % 6, so ranges from separate calls never collide.
    """
    enums = enum_values()
    params = {
        "prefix": spec.prefix,
        "topic": spec.topic,
        "currencies": enums["currency"][:2],
        "payment_methods": enums["payment_method"],
        "channels": enums["channel"],
        "device_types": enums["device_type"],
        "countries": COUNTRIES,
        "n_customers": spec.n_customers,
        "n_merchants": spec.n_merchants,
        "n_products": spec.n_products,
        "start_time": spec.start_time,
        "seconds_per_row": spec.span.total_seconds() / max(1, spec.total_rows),
        "first": first,
        "last": last,
    }
    offsets = {"topic": spec.topic, "first_offset": first // 6, "last_offset": last // 6 + 1}
    with conn.cursor() as cur:
        cur.execute(TRANSACTIONS_SQL, params)
        inserted = cur.rowcount
        if spec.scored:
            cur.execute(SCORES_SQL, offsets)
            cur.execute(ALERTS_SQL, {"like": spec.prefix + "t%"})
        cur.execute(CHARGEBACKS_SQL, {**offsets, "every": spec.chargeback_every})
    conn.commit()
    return inserted


REFERENCE_SQL = [
    """
    INSERT INTO reference.customers (customer_id, first_name, signup_at, home_country, home_city, home_lat,
                                     home_lon, currency, value_tier, preferred_payment, preferred_channel,
                                     n_devices, favourite_category, updated_at)
    SELECT %(prefix)s || 'c' || g, 'name' || g, %(start_time)s::timestamptz - interval '400 days',
           (%(countries)s::text[])[1 + g %% cardinality(%(countries)s::text[])], 'city-' || (g %% 50),
           -60 + (g %% 120), -170 + (g %% 340), 'USD',
           (ARRAY['bronze', 'silver', 'gold', 'platinum'])[1 + g %% 4], 'card', 'web', 2, 'cat' || (g %% 10),
           %(start_time)s::timestamptz - interval '1 day'
    FROM generate_series(0, %(n_customers)s - 1) AS g
    WHERE g %% %(every)s = 0
    ON CONFLICT (customer_id) DO NOTHING
    """,
    """
    INSERT INTO reference.merchants (merchant_id, name, category, country, city, has_stores, updated_at)
    SELECT %(prefix)s || 'm' || g, 'merchant ' || g, 'cat' || (g %% 10), 'US', 'city-' || (g %% 50),
           g %% 2 = 0, %(start_time)s::timestamptz - interval '1 day'
    FROM generate_series(0, %(n_merchants)s - 1) AS g
    WHERE g %% %(every)s = 0
    ON CONFLICT (merchant_id) DO NOTHING
    """,
    """
    INSERT INTO reference.terminals (terminal_id, merchant_id, kind, city, country, lat, lon, updated_at)
    SELECT %(prefix)s || 'm' || g || '-t' || k, %(prefix)s || 'm' || g,
           (ARRAY['web_checkout', 'mobile_sdk', 'pos'])[1 + k], 'city-' || (g %% 50), 'US', 40, -70,
           %(start_time)s::timestamptz - interval '1 day'
    FROM generate_series(0, %(n_merchants)s - 1) AS g, generate_series(0, 2) AS k
    WHERE g %% %(every)s = 0
    ON CONFLICT (terminal_id) DO NOTHING
    """,
    """
    INSERT INTO reference.products (product_id, name, category, brand, price, currency, attributes,
                                    updated_at)
    SELECT %(prefix)s || 'p' || g, 'product ' || g, 'cat' || (g %% 10), 'brand' || (g %% 30),
           round(1 + (g %% 15000) / 100.0, 2), 'USD', jsonb_build_object('colour', 'c' || (g %% 7)),
           %(start_time)s::timestamptz - interval '1 day'
    FROM generate_series(0, %(n_products)s - 1) AS g
    WHERE g %% %(every)s = 0
    ON CONFLICT (product_id) DO NOTHING
    """,
]


def insert_reference(conn: psycopg.Connection, spec: SyntheticSpec, every: int = 1) -> None:
    """Reference rows (customers, merchants, terminals, products) for every `every`-th id of `spec`.

    every > 1 leaves the other ids unknown to reference data, which the dimensions must absorb as inferred
    members (as they must for late-arriving reference data).
    """
    params = {
        "prefix": spec.prefix,
        "start_time": spec.start_time,
        "countries": COUNTRIES,
        "n_customers": spec.n_customers,
        "n_merchants": spec.n_merchants,
        "n_products": spec.n_products,
        "every": every,
    }
    with conn.cursor() as cur:
        for sql in REFERENCE_SQL:
            cur.execute(sql, params)
    conn.commit()
