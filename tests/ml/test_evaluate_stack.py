"""`ecom evaluate` against the real stack: a small history landed in master.*, a model trained and registered
in MLflow, the speed layer's table holding stored scores; offline and stored figures as the command prints.

The history is simulated at a random start in 1995-2005 that no landed row falls in (its own ids namespace),
so no other test's rows share its period on the shared master dataset.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ml import registry
from ml.assess import Period, evaluate_period
from ml.data import model_input, simulated_history
from ml.evaluate import evaluation_report
from ml.features import history_context
from ml.train import TrainConfig, train
from streaming.speed.scoring import SPEED_COLUMNS
from tests.ml.conftest import unique

pytestmark = [pytest.mark.stack, pytest.mark.slow]

# the speed layer's row as stored (speed.scored_transactions adds the micro-batch id)
SCORED_COLUMNS = [*SPEED_COLUMNS, "batch_id"]


def _land(stack, tx: pd.DataFrame, cb: pd.DataFrame) -> None:
    """Into master.* through the landing's own exactly-once write path."""
    from kernel.db import connect
    from streaming.landing.master import (
        chargeback_row,
        insert_chargeback_rows,
        insert_master_rows,
        master_row,
    )

    events = tx.assign(schema_version=1).to_dict("records")
    amounts = tx.set_index("transaction_id")["amount"]
    labels = cb.assign(schema_version=1, amount=cb["transaction_id"].map(amounts)).to_dict("records")
    with connect(stack) as conn:
        insert_master_rows(conn, [master_row(e, kafka_offset=i) for i, e in enumerate(events)])
        insert_chargeback_rows(conn, [chargeback_row(c, kafka_offset=i) for i, c in enumerate(labels)])


def _store(stack, rows: pd.DataFrame, scores: np.ndarray, version: str, threshold: float) -> None:
    """Rows as the speed layer writes them to speed.scored_transactions (scores given by the test)."""
    from kernel.db import connect, copy_insert

    tuples = [
        (
            r.transaction_id,
            r.customer_id,
            r.merchant_id,
            r.terminal_id,
            r.event_time.to_pydatetime(),
            r.currency,
            r.amount,
            r.payment_method,
            r.channel,
            r.device_type,
            r.ip_country,
            1,
            float(s),
            bool(s >= threshold),
            version,
            0,
            i,
            r.event_time.to_pydatetime(),
            0,
        )
        for i, (r, s) in enumerate(zip(rows.itertuples(), scores, strict=True))
    ]
    with connect(stack) as conn, conn.transaction(), conn.cursor() as cur:
        copy_insert(cur, "speed.scored_transactions", SCORED_COLUMNS, tuples)


def _free_start(stack, days: int) -> datetime:
    """A random start in 1995-2005 whose `days` (and a week on each side) hold no landed transaction: this
    fixture lands one history per module that uses it (test_champion_evaluation_dagster imports it), and
    `ecom evaluate --from master` reads every row of the period, whoever landed it (two random windows
    once overlapped in CI: 365 rows of the other history in the period)."""
    from kernel.db import connect

    for _ in range(100):
        start = datetime(1995, 1, 2, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 4000)
        with connect(stack) as conn:
            (taken,) = conn.execute(
                "SELECT count(*) FROM master.transactions WHERE event_time >= %s AND event_time < %s",
                (start - timedelta(days=7), start + timedelta(days=days + 7)),
            ).fetchone()
        if taken == 0:
            return start
    raise AssertionError(f"no free {days}-day window in 1995-2005 on this master dataset")


@pytest.fixture(scope="module")
def landed(stack):
    start = _free_start(stack, 50)
    ns = f"ev{uuid.uuid4().hex[:8]}-"
    tx, cb = simulated_history(seed=13, n_customers=4000, days=50, start=start, fraud_rate=3.0, namespace=ns)
    name = unique("mltest_evaluate")
    result = train(
        tx, cb, TrainConfig(quick=True, source="tests/ml evaluate"), settings=stack, model_name=name
    )
    assert result.promoted
    _land(stack, tx, cb)
    period = Period(pd.Timestamp(start + timedelta(days=40)), pd.Timestamp(start + timedelta(days=50)))
    return name, result, tx, cb, period


def _expected(stack, name: str, tx: pd.DataFrame, cb: pd.DataFrame, period: Period):
    """What the figures must be: the training code's context over the in-memory history, that version's
    scores, labels from the chargebacks."""
    champ = registry.load_champion(stack, name)
    enriched, _ = history_context(tx, cb)
    rows = model_input(enriched[period.mask(enriched["event_time"])]).reset_index(drop=True)
    scored = pd.DataFrame(
        {
            "event_time": rows["event_time"],
            "customer_id": rows["customer_id"],
            "label": rows["transaction_id"].isin(set(cb["transaction_id"])).astype(int),
            "score": champ.score(rows),
        }
    )
    return champ, rows, scored


def test_offline_figures_over_master_are_the_training_codes(stack, landed):
    name, result, tx, cb, period = landed
    champ, rows, scored = _expected(stack, name, tx, cb, period)
    k = max(1, int(round(result.alerts_per_day)))
    report = evaluate_period("master", period, stored=False, settings=stack, model_name=name, progress=False)
    assert report["model"] == {"name": name, "version": result.version, "threshold": champ.threshold}
    assert report["k_per_day"] == k
    expected = evaluation_report(scored, champ.threshold, k)
    assert scored["label"].sum() > 5 and report["offline"]["frauds"] == scored["label"].sum()
    for key, value in expected.items():
        assert report["offline"][key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    assert "stored" not in report


def test_stored_scores_are_judged_with_their_labels_from_master(stack, landed, capsys):
    """The stream's table for the period, joined with master.chargebacks: stored scores equal to the
    offline ones give the same figures; the command's JSON shows both and which version scored the rows."""
    from ecom.cli import main

    name, result, tx, cb, period = landed
    champ, rows, scored = _expected(stack, name, tx, cb, period)
    _store(stack, rows, scored["score"].to_numpy(), result.version, champ.threshold)
    argv = [
        "evaluate",
        "--from",
        "master",
        "--start",
        period.start.isoformat(),
        "--end",
        period.end.isoformat(),
    ]
    assert main([*argv, "--model", result.version, "--model-name", name, "--stored", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stored"]["model_versions"] == {result.version: len(rows)}
    assert report["stored"]["frauds"] == report["offline"]["frauds"] > 5
    for key in ("roc_auc", "average_precision", "card_precision_at_k", "deployed_recall", "deployed_fpr"):
        assert report["stored"][key] == pytest.approx(report["offline"][key], rel=1e-12), key
    assert report["stored"]["alert_rate_as_stored"] == pytest.approx(report["stored"]["alert_rate"])


def test_bad_arguments_are_one_line(stack, landed, capsys):
    from ecom.cli import main

    name, result, *_ = landed
    assert main(["evaluate", "--start", "1980-01-01", "--end", "1980-01-08", "--model-name", name]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ecom evaluate: no transaction in master") and "\n" not in err
    assert main(["evaluate", "--start", "1980-01-01", "--end", "1990-01-01", "--model", "abc"]) == 2
    assert "no transaction" in capsys.readouterr().err  # the data is checked before the model
