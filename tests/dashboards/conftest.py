"""Fixtures of the dashboards room: the Metabase API double on a free local port and settings pointed at it, and
a database the pipeline filled (shared by check-sql and the Dash UI tests)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import psycopg
import pytest
from metabase_double import DoubleServer, settings_for

from dashboards.spec import load_specs
from kernel.settings import Settings, get_settings


@pytest.fixture
def double():
    server = DoubleServer()
    yield server
    server.stop()


@pytest.fixture
def mb_settings(double) -> Settings:
    return settings_for(double.url)


@pytest.fixture(scope="session")
def specs():
    return load_specs(Path(get_settings().metabase.specs_dir))


# ------------------------------------------------------------------------------------- pipeline-filled database


def _materialize_analytics(settings) -> list[str]:
    """Run the analytics room's Dagster job (`analytics_refresh`) in-process against the stack's instance,
    exactly as `ecom batch` runs the batch job; returns the analytics tables it materialized."""
    import os

    import dagster as dg

    from orchestration.batch import dagster_env

    for name, value in dagster_env(settings).items():
        os.environ.setdefault(name, value)
    from orchestration.definitions import defs

    job = defs.resolve_job_def("analytics_refresh")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, tags={"trigger": "metabase test"}
        )
    keys = {
        e.asset_key.path[1]
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[0] == "analytics"
    }
    assert result.success, (result.run_id, sorted(keys))
    return sorted(keys)


@pytest.fixture(scope="session")
def filled(stack):
    """Land this test's transactions (with speed rows, alerts, chargebacks and reference data), then run the
    batch layer and the analytics refresh through their Dagster jobs and a quality suite: the pipeline's own
    code paths."""
    from expectations.runner import run_suites
    from orchestration.batch import run_batch
    from orchestration.synthetic import SyntheticSpec, insert_reference, insert_transactions

    tag = uuid.uuid4().hex[:8]
    spec = SyntheticSpec(
        prefix=f"mb{tag}",
        topic=f"metabase-test-{tag}",
        n_customers=400,
        n_merchants=20,
        n_products=150,
        total_rows=4_000,
        chargeback_every=37,
    )
    with psycopg.connect(stack.postgres.dsn()) as conn:
        insert_reference(conn, spec)
        insert_transactions(conn, spec, 0, spec.total_rows - 1)
    outcome = run_batch(settings=stack)
    # what the dashboards read must have been rebuilt by this run (the run's own checks are the batch room's)
    needed = {"serving/transactions", "serving/fraud_alerts", "marts/fct_order_lines", "marts/dim_product"}
    assert needed <= set(outcome.materialized), (outcome.run_id, sorted(needed - set(outcome.materialized)))
    tables = _materialize_analytics(stack)
    # a real `ecom quality` run on the real tables (trigger "cli": the dashboards' score views show it)
    quality = run_suites(["master_transactions"], settings=stack)
    return {"spec": spec, "analytics_tables": tables, "quality_run": quality.run_id}


# ------------------------------------------------------------------------------------- events through the stream


class Stream:
    """Events produced to a topic of this session and landed by the real landing query (Spark, availableNow):
    master rows plus the query's own ops.stream_batches rows (latency, Kafka lag) the Operations cards read."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        from tests.streaming.support import create_topic, unique

        self.settings = settings
        self.topic = unique("t_dash")
        self.labels = unique("t_dash_labels")
        self.query_name = unique("q_dash_landing")
        self.checkpoint = tmp / "landing"
        create_topic(settings, self.topic)
        create_topic(settings, self.labels, partitions=1)

    def send_and_land(self, n: int, seed: int) -> list[str]:
        from kernel.spark import get_spark
        from streaming.landing.query import LandingConfig, start_landing_query
        from tests.streaming.support import make_events, produce

        # after the newest landed event: the Operations windows are anchored on it, and other tests may have
        # landed rows stamped later than now
        with psycopg.connect(self.settings.postgres.dsn()) as conn:
            newest = conn.execute("SELECT max(event_time), now() FROM master.transactions").fetchone()
        start = max(t for t in newest if t is not None) + dt.timedelta(seconds=1)
        events = make_events(n, seed=seed, start=start)
        produce(self.settings, self.topic, events)
        cfg = LandingConfig.from_settings(
            self.settings,
            topic_transactions=self.topic,
            topic_labels=self.labels,
            query_name=self.query_name,
            checkpoint=self.checkpoint,
        )
        start_landing_query(get_spark("ecom-tests-dashboards"), cfg, self.settings).awaitTermination()
        return [e["transaction_id"] for e in events]


@pytest.fixture(scope="session")
def stream(stack, tmp_path_factory) -> Stream:
    s = Stream(stack, tmp_path_factory.mktemp("dash-stream"))
    ids = s.send_and_land(120, seed=11)
    with psycopg.connect(stack.postgres.dsn()) as conn:
        landed = conn.execute(
            "SELECT count(*) FROM master.transactions WHERE transaction_id = ANY(%s)", (ids,)
        ).fetchone()[0]
    assert landed == len(ids)
    return s
