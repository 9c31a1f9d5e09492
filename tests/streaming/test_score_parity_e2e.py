"""The stream's stored scores are the model's scores (issue 18): end to end on the real stack.

A labelled five-column file (customer, terminal, amount, time, fraud label: the shape of most public fraud
files) is replayed through Kafka by `ecom replay`'s machinery, landed into `master.*` by the landing query
and scored by the real speed layer (several micro-batches over three partitions). The same registered model
version then scores the same rows offline over `master.*` the way `ecom evaluate` does
(`ml.assess.offline_scores`), and every row's stored `fraud_score` must equal the offline score within
1e-9: for a history years in the past (a wall-clock bound on any look-back drops its chargebacks), for the
last hours up to now, and across a stream restart from its checkpoint.

The model is label-aware (the `blend` variant: its classifier learned that a terminal with recent
chargebacks is risky), so a chargeback context that differs between the two sides moves the scores.
Customer and terminal ids carry a per-run namespace, so no other test's rows share their context.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from kernel.db import connect
from tests.streaming.support import create_topic, unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]

LABEL_DELAY_DAYS = 1.0
HOLD_IDLE_MS = 1500  # event-time order: the tail of a replay leaves after the watermark stood still this long
MAX_OFFSETS = 700  # several micro-batches per run, each partition's progress cut at its own offset
COLUMNS = {
    "customer": "customer_id",
    "terminal": "terminal_id",
    "amount": "amount",
    "timestamp": "tx_datetime",
    "label": "is_fraud",
}


def write_labelled_file(
    path: Path, start: datetime, span: timedelta, seed: int, namespace: str, n_events: int = 2400
) -> pd.DataFrame:
    """A seeded card-transactions file with only the five usual columns. Customers pay at their 3 usual
    terminals; two terminals are skimmed in the second half (their payments mostly fraud, larger), plus a
    thin rate of fraud anywhere. Returns the rows written."""
    rng = np.random.default_rng(seed)
    n_customers, n_terminals = 160, 30
    seconds = np.sort(rng.uniform(0, span.total_seconds(), n_events))
    cust = rng.integers(0, n_customers, n_events)
    usual = rng.integers(0, n_terminals, (n_customers, 3))
    term = usual[cust, rng.integers(0, 3, n_events)]
    amount = rng.lognormal(3.5, 0.5, n_customers)[cust] * rng.lognormal(0.0, 0.3, n_events)
    skimmed = np.isin(term, [0, 1]) & (seconds > span.total_seconds() / 2)
    fraud = (skimmed & (rng.random(n_events) < 0.6)) | (rng.random(n_events) < 0.005)
    amount[fraud] *= rng.uniform(2.0, 5.0, int(fraud.sum()))
    times = pd.Timestamp(start) + pd.to_timedelta(np.round(seconds), unit="s")
    rows = pd.DataFrame(
        {
            "customer_id": [f"{namespace}C{c:04d}" for c in cust],
            "terminal_id": [f"{namespace}T{t:03d}" for t in term],
            "amount": np.round(amount, 2),
            "tx_datetime": times.strftime("%Y-%m-%d %H:%M:%S"),
            "is_fraud": fraud.astype(int),
        }
    )
    rows.to_csv(path, index=False)
    return rows


def _mapping():
    from events.replay import ColumnMapping

    return ColumnMapping(dict(COLUMNS))


def _frames_of_file(path: Path, tmp: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The file as `ecom replay` converts it (events + their chargebacks), without Kafka."""
    from ml.data import replayed_history

    return replayed_history(path, COLUMNS, LABEL_DELAY_DAYS)


@pytest.fixture(scope="module")
def parity_model(stack, tmp_path_factory):
    """One registered version (champion of its own model name), label-aware, trained on another file of
    the same shape through the project's feature code."""
    from ml import registry
    from ml.data import input_example
    from ml.features import history_context
    from ml.model import build_pipeline, score

    tmp = tmp_path_factory.mktemp("parity_model")
    path = tmp / "train.csv"
    write_labelled_file(path, datetime(2020, 3, 1, tzinfo=UTC), timedelta(days=40), 101, unique("pm") + "-")
    tx, cb = _frames_of_file(path, tmp)
    enriched, _ = history_context(tx, cb)
    labels = enriched["transaction_id"].isin(set(cb["transaction_id"])).astype(int).to_numpy()
    assert labels.sum() >= 30
    params = {"variant": "blend", "blend_weight": 0.7, "n_estimators": 60, "gb_max_iter": 60}
    pipe = build_pipeline(params).fit(enriched, labels)
    threshold = float(np.quantile(score(pipe, enriched), 0.97))
    name = unique("parity_model")
    registry.configure(stack)
    mlflow.set_experiment(f"{name}_tests")
    with mlflow.start_run(run_name="score-parity"):
        version = registry.register(
            pipe,
            input_example(enriched),
            {"threshold": str(threshold), "source": "tests/streaming"},
            stack,
            name,
        )
    registry.set_alias(version, stack, name)
    return name, version


class ReplayRun:
    """One history's topics, checkpoints and query names: replay -> landing -> speed layer."""

    def __init__(
        self,
        stack,
        spark,
        tmp: Path,
        model_name: str,
        partitions: int = 1,
        label_delay_days: float = LABEL_DELAY_DAYS,
    ) -> None:
        self.stack, self.spark, self.tmp, self.model_name = stack, spark, tmp, model_name
        self.label_delay_days = label_delay_days
        self.topic, self.labels, self.dead = unique("t_parity"), unique("t_parity_cb"), unique("t_parity_dl")
        create_topic(stack, self.topic, partitions=partitions)
        create_topic(stack, self.labels, partitions=1)
        create_topic(stack, self.dead, partitions=1)  # the producer refuses a topic that is not there
        self.speed_query, self.land_query = unique("q_parity"), unique("q_parity_land")

    def replay(self, path: Path) -> None:
        from events.replay import replay_file

        report = replay_file(
            path,
            _mapping(),
            topic=self.topic,
            labels_topic=self.labels,
            dead_letter_topic=self.dead,
            label_delay_days=self.label_delay_days,
            settings=self.stack,
        )
        assert report.rows == report.delivered and not report.bad_rows

    def land(self) -> None:
        from streaming.landing.query import LandingConfig, start_landing_query

        cfg = LandingConfig.from_settings(
            self.stack,
            topic_transactions=self.topic,
            topic_labels=self.labels,
            query_name=self.land_query,
            checkpoint=self.tmp / "land",
        )
        start_landing_query(self.spark, cfg, self.stack).awaitTermination()

    def stream(self) -> None:
        from streaming.speed.query import StreamConfig, start_speed_query

        cfg = StreamConfig.from_settings(
            self.stack,
            topic=self.topic,
            query_name=self.speed_query,
            checkpoint=self.tmp / "speed",
            available_now=True,
            model_name=self.model_name,
            max_offsets_per_trigger=MAX_OFFSETS,
        )
        start_speed_query(self.spark, cfg, self.stack).awaitTermination()

    def stream_until_stored(
        self,
        namespace: str,
        expected: int,
        order: str,
        max_offsets: int = MAX_OFFSETS,
        timeout_s: float = 240,
    ) -> None:
        """The speed layer as `ecom stream` runs it (a processing-time trigger), stopped once `expected` rows
        of this history's customers are stored."""
        import time

        from streaming.speed.query import StreamConfig, start_speed_query

        cfg = StreamConfig.from_settings(
            self.stack,
            topic=self.topic,
            query_name=self.speed_query,
            checkpoint=self.tmp / "speed",
            trigger="500 milliseconds",
            model_name=self.model_name,
            max_offsets_per_trigger=max_offsets,
            order=order,
            hold_idle_ms=HOLD_IDLE_MS,
        )
        query = start_speed_query(self.spark, cfg, self.stack)
        deadline = time.monotonic() + timeout_s
        try:
            while (n := self.stored(namespace)) < expected:
                assert query.exception() is None, query.exception()
                assert time.monotonic() < deadline, f"{n} of {expected} rows stored"
                time.sleep(0.5)
        finally:
            query.stop()

    def stored(self, namespace: str) -> int:
        with connect(self.stack) as conn:
            return conn.execute(
                "SELECT count(*) FROM speed.scored_transactions WHERE customer_id LIKE %s",
                (namespace + "%",),
            ).fetchone()[0]

    def batches(self) -> int:
        with connect(self.stack) as conn:
            return conn.execute(
                "SELECT count(*) FROM ops.stream_batches WHERE query_name = %s AND rows_written > 0",
                (self.speed_query,),
            ).fetchone()[0]


def stored_and_offline(stack, model, namespace: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Every landed row of this history with the stream's stored score (and the micro-batch that wrote it)
    beside the offline score: `ecom evaluate`'s path over the whole master dataset before the period's end."""
    from ml import registry
    from ml.assess import Period, context_for_period, load_source, offline_scores

    name, version = model
    period = Period(pd.Timestamp(start), pd.Timestamp(end))
    tx, cb = load_source("master", period, stack)
    champ = registry.load_version(version, stack, name)
    offline = offline_scores(tx, cb, period, champ.model, progress=False)
    offline = offline[offline["customer_id"].str.startswith(namespace)]
    with connect(stack) as conn:
        stored = pd.DataFrame(
            conn.execute(
                "SELECT transaction_id, terminal_id, fraud_score, model_version, batch_id "
                "FROM speed.scored_transactions WHERE transaction_id = ANY(%s)",
                (offline["transaction_id"].tolist(),),
            ).fetchall(),
            columns=["transaction_id", "terminal_id", "fraud_score", "model_version", "batch_id"],
        )
    assert len(offline) >= 1000
    assert len(stored) == len(offline), "the stream did not store every landed row"
    assert set(stored["model_version"]) == {version}
    both = offline.merge(stored, on="transaction_id", validate="one_to_one")
    both["diff"] = (both["fraud_score"].astype(float) - both["score"]).abs()
    # the comparison covers what tends to drift: rows that count chargebacks, alerts on both sides
    mine = tx[tx["customer_id"].str.startswith(namespace)]
    context = context_for_period(mine, cb[cb["customer_id"].str.startswith(namespace)], period, False)
    assert (context["term_chargebacks_7d"] > 0).sum() >= 20
    assert (both["score"] >= champ.threshold).sum() >= 5
    return both


def assert_every_row_equal(both: pd.DataFrame) -> None:
    worst = both.loc[both["diff"].idxmax()]
    assert both["diff"].max() <= 1e-9, (
        f"{int((both['diff'] > 1e-9).sum())} of {len(both)} rows differ; worst {worst['transaction_id']} "
        f"stored {worst['fraud_score']} offline {worst['score']}"
    )


def terminals_walked_out_of_order(both: pd.DataFrame) -> set[str]:
    """Terminals with two events the stream walked against event-time order: the earlier one in a later
    micro-batch (the walk only orders rows within a batch). Once that happens the terminal's windows hold
    an event out of order, and later rows of the terminal can count what should have expired."""
    out = set()
    for terminal, rows in both.groupby("terminal_id"):
        t = rows["event_time"].to_numpy()
        b = rows["batch_id"].to_numpy()
        if ((t[None, :] < t[:, None]) & (b[None, :] > b[:, None])).any():
            out.add(terminal)
    return out


def test_a_history_years_in_the_past_is_scored_as_offline(stack, spark, parity_model, tmp_path):
    ns = unique("py") + "-"
    start = datetime(2019, 2, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 300)
    span = timedelta(days=30)
    write_labelled_file(tmp_path / "history.csv", start, span, seed=7, namespace=ns)
    run = ReplayRun(stack, spark, tmp_path, parity_model[0])
    run.replay(tmp_path / "history.csv")
    run.land()
    run.stream()
    assert run.batches() >= 3
    assert_every_row_equal(stored_and_offline(stack, parity_model, ns, start, start + span))


def test_the_last_hours_up_to_now_are_scored_as_offline(stack, spark, parity_model, tmp_path):
    ns = unique("pn") + "-"
    span = timedelta(hours=20)
    start = datetime.now(UTC).replace(microsecond=0) - span - timedelta(minutes=5)
    write_labelled_file(tmp_path / "today.csv", start, span, seed=8, namespace=ns)
    # chargebacks 2 hours after the fraud, so that they count inside a 20-hour history
    run = ReplayRun(stack, spark, tmp_path, parity_model[0], label_delay_days=2 / 24)
    run.replay(tmp_path / "today.csv")
    run.land()
    run.stream()
    assert_every_row_equal(
        stored_and_offline(stack, parity_model, ns, start, start + span + timedelta(seconds=1))
    )


def test_a_stream_restarted_from_its_checkpoint_scores_as_offline(stack, spark, parity_model, tmp_path):
    """Half of the history, stream stops; the other half arrives, the stream restarts from its checkpoint
    (its keyed state carries the first half's customers and terminals)."""
    ns = unique("pr") + "-"
    start = datetime(2022, 6, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 300)
    span = timedelta(days=30)
    rows = write_labelled_file(tmp_path / "all.csv", start, span, seed=9, namespace=ns)
    cut = len(rows) // 2
    rows.iloc[:cut].to_csv(tmp_path / "first.csv", index=False)
    rows.iloc[cut:].to_csv(tmp_path / "second.csv", index=False)
    run = ReplayRun(stack, spark, tmp_path, parity_model[0])
    run.replay(tmp_path / "first.csv")
    run.land()
    run.stream()
    first_batches = run.batches()
    run.replay(tmp_path / "second.csv")
    run.land()
    run.stream()
    assert run.batches() > first_batches
    assert_every_row_equal(stored_and_offline(stack, parity_model, ns, start, start + span))


def test_over_several_partitions_the_stream_differs_only_on_terminals_walked_out_of_order(
    stack, spark, parity_model, tmp_path
):
    """The skew that remains (issue 18): the topic is keyed by customer, so one terminal's events come from
    every partition, and a micro-batch cut by maxOffsetsPerTrigger ends each partition at another event
    time. The terminal state then walks some of its events out of event-time order (what an earlier batch
    scored cannot be undone). Every row of a terminal that kept its order equals the offline score; the rows
    that differ are all on terminals that did not. (Measured: 49 and 30 of 2,400 rows in two runs on 3 partitions.)"""
    ns = unique("pp") + "-"
    start = datetime(2021, 2, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 300)
    span = timedelta(days=30)
    write_labelled_file(tmp_path / "history.csv", start, span, seed=7, namespace=ns)
    run = ReplayRun(stack, spark, tmp_path, parity_model[0], partitions=3)
    run.replay(tmp_path / "history.csv")
    run.land()
    run.stream()
    both = stored_and_offline(stack, parity_model, ns, start, start + span)
    shuffled = both["terminal_id"].isin(terminals_walked_out_of_order(both))
    differ = both["diff"] > 1e-9
    print(
        f"3 partitions: {int(differ.sum())} of {len(both)} rows differ, on {shuffled.sum()} rows' terminals"
    )
    assert shuffled.any()
    assert_every_row_equal(both[~shuffled])


@pytest.mark.parametrize("when", ["years_ago", "today"])
def test_in_event_time_order_over_several_partitions_every_row_is_scored_as_offline_across_a_restart(
    stack, spark, parity_model, tmp_path, when
):
    """The fix for the skew above (`--order event_time`): each partition its own source, rows held until every
    partition's event time has passed them. Three partitions, micro-batches cut at each partition's own
    offset, a history years in the past or the last 20 hours up to now, a restart from the checkpoint half
    way (rows still held then are in the checkpoint's state): every stored score equals the offline one,
    and the terminals' events were walked in event-time order."""
    ns = unique("po") + "-"
    if when == "today":
        span = timedelta(hours=20)
        start = datetime.now(UTC).replace(microsecond=0) - span - timedelta(minutes=5)
        label_delay_days = 2 / 24  # chargebacks that count inside a 20-hour history
    else:
        span = timedelta(days=30)
        start = datetime(2021, 2, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 300)
        label_delay_days = LABEL_DELAY_DAYS
    rows = write_labelled_file(tmp_path / "all.csv", start, span, seed=7, namespace=ns)
    cut = len(rows) // 2
    rows.iloc[:cut].to_csv(tmp_path / "first.csv", index=False)
    rows.iloc[cut:].to_csv(tmp_path / "second.csv", index=False)
    run = ReplayRun(stack, spark, tmp_path, parity_model[0], partitions=3, label_delay_days=label_delay_days)
    run.replay(tmp_path / "first.csv")
    run.land()
    run.stream_until_stored(ns, cut, order="event_time", max_offsets=300)
    first_batches = run.batches()
    run.replay(tmp_path / "second.csv")
    run.land()
    run.stream_until_stored(ns, len(rows), order="event_time", max_offsets=300)
    assert run.batches() >= first_batches + 3 and first_batches >= 3
    both = stored_and_offline(stack, parity_model, ns, start, start + span + timedelta(seconds=1))
    assert both["batch_id"].nunique() >= 6
    assert not terminals_walked_out_of_order(both)
    assert_every_row_equal(both)
