"""The batch and serving layers on the real stack: Dagster runs dbt on generated data, every dbt test passes,
the star holds this test's rows, and the serving views equal the master dataset while rows keep landing.

Data: the shop simulator's history landed by orchestration.synthetic, with a unique id prefix and Kafka topic,
so the assertions see only this test's rows; the builds themselves run over everything in the shared database.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from kernel import db
from orchestration.batch import run_batch
from orchestration.synthetic import SyntheticSpec, insert_reference, insert_transactions

pytestmark = [pytest.mark.stack, pytest.mark.slow]

INITIAL_ROWS = 3_000
CHUNK_ROWS = 150

COMPARE_SQL = """
SELECT s.n, s.total, m.n, m.total, s.n_batch, s.n_realtime
FROM (SELECT count(*) AS n, coalesce(sum(amount), 0) AS total,
             count(*) FILTER (WHERE served_from = 'batch') AS n_batch,
             count(*) FILTER (WHERE served_from = 'realtime') AS n_realtime
      FROM serving.transactions WHERE transaction_id LIKE %(like)s) AS s,
     (SELECT count(*) AS n, coalesce(sum(amount), 0) AS total
      FROM master.transactions WHERE transaction_id LIKE %(like)s) AS m
"""


class Writer(threading.Thread):
    """Lands chunks of this test's transactions (with speed rows) until stopped, like the stream would."""

    def __init__(self, spec: SyntheticSpec, first: int) -> None:
        super().__init__(daemon=True)
        self.spec, self.next, self.stop, self.error = spec, first, threading.Event(), None

    def run(self) -> None:
        try:
            with db.connect() as conn:
                while not self.stop.is_set() and self.next + CHUNK_ROWS <= self.spec.total_rows:
                    insert_transactions(conn, self.spec, self.next, self.next + CHUNK_ROWS - 1)
                    self.next += CHUNK_ROWS
                    time.sleep(0.2)
        except Exception as exc:  # surfaced by the test
            self.error = exc


class Reader(threading.Thread):
    """Compares serving and master for this test's rows in one statement (one snapshot), repeatedly."""

    def __init__(self, like: str) -> None:
        super().__init__(daemon=True)
        self.like, self.stop, self.samples, self.error = like, threading.Event(), [], None

    def run(self) -> None:
        try:
            with db.connect(autocommit=True) as conn:
                while not self.stop.is_set():
                    self.samples.append(conn.execute(COMPARE_SQL, {"like": self.like}).fetchone())
                    time.sleep(0.25)
        except Exception as exc:
            self.error = exc


def watermark() -> int:
    with db.connect() as conn:
        return conn.execute("SELECT coalesce(max(watermark_seq), 0) FROM marts.batch_watermark").fetchone()[0]


@pytest.fixture(scope="module")
def scenario(stack):
    tag = uuid.uuid4().hex[:8]
    spec = SyntheticSpec(
        prefix=f"bt{tag}-",
        topic=f"fixture-{tag}",
        n_customers=400,
        n_merchants=30,
        n_products=300,
        start_time=datetime.now(UTC) - timedelta(days=1),
        span=timedelta(days=1),
        total_rows=100_000,  # the writer lands ~600 rows/s while a batch run lasts; it stops at the end
    )
    with db.connect() as conn:
        insert_reference(conn, spec, every=2)  # odd ids stay unknown: inferred members
        insert_transactions(conn, spec, 0, INITIAL_ROWS - 1)

    first = run_batch()
    first_watermark = watermark()

    writer, reader = Writer(spec, INITIAL_ROWS), Reader(spec.prefix + "%")
    writer.start()
    time.sleep(1.0)
    reader.start()
    second = run_batch()  # incremental refresh while rows land and the reader compares
    time.sleep(1.5)
    writer.stop.set()
    writer.join(30)
    time.sleep(0.5)
    reader.stop.set()
    reader.join(30)
    return {
        "spec": spec,
        "first": first,
        "second": second,
        "first_watermark": first_watermark,
        "second_watermark": watermark(),
        "writer": writer,
        "reader": reader,
    }


def test_every_dbt_test_passes_as_an_asset_check(scenario) -> None:
    from orchestration.defs.dbt.assets import ecom_dbt_assets

    dbt_checks = {(key.asset_key.to_user_string(), key.name) for key in ecom_dbt_assets.check_keys}
    for outcome in (scenario["first"], scenario["second"]):
        assert outcome.success, f"run {outcome.run_id} failed"
        # an increment runs the dbt tests of what it builds (the assets its changed sources feed)
        assert {(c.asset, c.name) for c in outcome.checks} == {
            c for c in dbt_checks if c[0] in outcome.materialized
        }
        assert len(outcome.checks) >= 80
        assert not outcome.failed_checks, outcome.failed_checks
        assert "marts/fct_transactions" in outcome.materialized
        assert "serving/transactions" in outcome.materialized


def test_serving_equals_master_while_rows_land(scenario) -> None:
    reader, writer = scenario["reader"], scenario["writer"]
    assert reader.error is None and writer.error is None, (reader.error, writer.error)
    assert len(reader.samples) >= 5
    mismatches = [s for s in reader.samples if (s[0], s[1]) != (s[2], s[3])]
    assert not mismatches, (
        f"serving != master in {len(mismatches)} of {len(reader.samples)} samples: {mismatches[:3]}"
    )
    # the samples covered rows landing (counts grew) and both halves of the merge
    assert reader.samples[-1][2] > reader.samples[0][2]
    assert any(s[4] > 0 for s in reader.samples) and any(s[5] > 0 for s in reader.samples)
    assert scenario["second_watermark"] > scenario["first_watermark"]


def test_star_holds_the_rows_of_the_batch(scenario) -> None:
    like = scenario["spec"].prefix + "%"
    with db.connect() as conn:
        wm = scenario["second_watermark"]
        master_n, items = conn.execute(
            "SELECT count(*), coalesce(sum(jsonb_array_length(line_items)), 0) FROM master.transactions "
            "WHERE transaction_id LIKE %s AND landed_seq <= %s",
            (like, wm),
        ).fetchone()
        fct_n = conn.execute(
            "SELECT count(*) FROM marts.fct_transactions WHERE transaction_id LIKE %s", (like,)
        ).fetchone()[0]
        lines = conn.execute(
            "SELECT count(*) FROM marts.fct_order_lines WHERE transaction_id LIKE %s", (like,)
        ).fetchone()[0]
        inferred, known = conn.execute(
            "SELECT count(*) FILTER (WHERE is_inferred), count(*) FILTER (WHERE NOT is_inferred) "
            "FROM marts.dim_customer WHERE customer_id LIKE %s",
            (scenario["spec"].prefix + "C%",),
        ).fetchone()
        mismatched_baselines = conn.execute(
            """
            SELECT count(*) FROM marts.customer_baselines b
            JOIN (SELECT customer_id, count(*) AS n FROM marts.fct_transactions
                  WHERE customer_id LIKE %(c)s GROUP BY 1) f USING (customer_id)
            WHERE b.n_transactions <> f.n OR cardinality(b.usual_device_ids) = 0 OR b.home_lat IS NULL
            """,
            {"c": scenario["spec"].prefix + "C%"},
        ).fetchone()[0]
    assert master_n > INITIAL_ROWS
    assert fct_n >= master_n  # everything landed up to the watermark (plus late commits caught)
    assert lines >= items and lines > fct_n
    assert inferred > 0 and known > 0
    assert mismatched_baselines == 0
