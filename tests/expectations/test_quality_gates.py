"""GX suites against real Postgres: clean data passes, each kind of bad row fails the right expectation,
the score drops, results land in quality.expectation_results, and a missing table is reported, not fatal.

Every test works in its own `qtest_<uuid>` schema (see conftest.py): nothing is written to the shared
master dataset, and results are looked up by this test's run id only.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ecom.cli import main
from expectations.runner import QualityRun, run_suites
from kernel.db import connect
from tests.expectations.support import QSchema, make_events, results_for

pytestmark = pytest.mark.stack

CORE = ["master_transactions", "speed_scored_transactions"]


def failing(run: QualityRun, suite: str) -> set[tuple[str, str | None]]:
    """(expectation type, column or the description of a query expectation) of each failed expectation."""
    return {(r.expectation, r.column or r.description) for r in run.suite(suite).failed}


def _run(q: QSchema, gx_root, names=CORE, **kw) -> QualityRun:
    return run_suites(names, targets=q.targets, project_root=gx_root, trigger="test", **kw)


def _clean(q: QSchema, n: int = 40, seed: int = 1) -> list[dict]:
    events = make_events(n, seed, q.now)
    q.insert_events(events)
    q.insert_speed(events)
    return events


def test_clean_generated_data_passes_and_is_stored(qschema: QSchema, gx_root, stack):
    _clean(qschema)
    run = _run(qschema, gx_root)
    for name in CORE:
        outcome = run.suite(name)
        assert outcome.status == "passed", [r.label for r in outcome.failed]
        assert outcome.rows and not outcome.blocking
    assert run.score == 1.0 and not run.blocking
    stored = results_for(stack, run.run_id)
    assert len(stored) == len(run.rows) and all(r["success"] for r in stored)
    with connect(stack) as conn:
        view = conn.execute(
            "SELECT score, failed, failed_critical, expectations FROM quality.scores_all WHERE run_id = %s",
            (run.run_id,),
        ).fetchone()
        on_dashboards = conn.execute(
            "SELECT count(*) FROM quality.scores WHERE run_id = %s", (run.run_id,)
        ).fetchone()
    assert view == (1.0, 0, 0, len(run.rows))
    assert on_dashboards == (0,)  # test runs stay out of the views the dashboards read


NOT_NULL_ID = ("expect_column_values_to_not_be_null", "transaction_id")
AMOUNT_RANGE = ("expect_column_values_to_be_between", "amount")
AMOUNT_SUM = (
    "unexpected_rows_expectation",
    "amount equals the sum of quantity x unit_price over line_items (to the cent)",
)
UNIQUE_ID = ("expect_column_values_to_be_unique", "transaction_id")


def _future_key(run: QualityRun) -> tuple[str, str]:
    desc = next(
        r.description
        for r in run.suite("master_transactions").rows
        if "in the future" in (r.description or "")
    )
    return ("unexpected_rows_expectation", desc)


def _inject(q: QSchema, kind: str) -> None:
    bad = make_events(3, 99, q.now)
    if kind == "null_ids":
        for e in bad:
            e["transaction_id"] = None
    elif kind == "negative_amounts":
        for e in bad:
            e["amount"] = -abs(e["amount"])
    elif kind == "future_timestamps":
        for e in bad:
            e["event_time"] = (q.now + timedelta(hours=2)).isoformat()
    elif kind == "duplicate_ids":
        bad = bad + [dict(bad[0])]  # the same transaction landed twice
    q.insert_events(bad)
    if kind != "null_ids":
        q.insert_speed([e for e in bad if e is not bad[-1] or kind != "duplicate_ids"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["null_ids", "negative_amounts", "future_timestamps", "duplicate_ids"])
def test_bad_rows_fail_the_right_expectations_and_lower_the_score(qschema: QSchema, gx_root, stack, kind):
    _clean(qschema)
    clean = _run(qschema, gx_root)
    assert clean.score == 1.0
    _inject(qschema, kind)
    run = _run(qschema, gx_root)
    expected = {
        "null_ids": {NOT_NULL_ID},
        # a negative total no longer matches its line items either (a warning)
        "negative_amounts": {AMOUNT_RANGE, AMOUNT_SUM},
        "future_timestamps": {_future_key(run)},
        "duplicate_ids": {UNIQUE_ID},
    }[kind]
    assert failing(run, "master_transactions") == expected
    master = run.suite("master_transactions")
    assert master.blocking and run.blocking  # each of these is a critical expectation
    assert run.score < clean.score
    with connect(stack) as conn:
        (stored_score,) = conn.execute(
            "SELECT score FROM quality.scores_all WHERE run_id = %s", (run.run_id,)
        ).fetchone()
    assert stored_score == pytest.approx(run.score)
    failed_stored = {
        (r["expectation"], r["column"]) for r in results_for(stack, run.run_id) if not r["success"]
    }
    assert {(e, c if e != "unexpected_rows_expectation" else None) for e, c in expected} <= failed_stored


@pytest.mark.slow
def test_speed_layer_missing_rows_beyond_lag_block(qschema: QSchema, gx_root):
    events = make_events(20, 3, qschema.now - timedelta(hours=1))
    qschema.insert_events(events, landed_at=qschema.now - timedelta(minutes=30))
    qschema.insert_speed(events[:15])  # five transactions never reached the speed layer
    run = _run(qschema, gx_root, thresholds=None)
    speed = run.suite("speed_scored_transactions")
    lost = [r for r in speed.failed if "missing from the speed layer" in (r.description or "")]
    assert len(lost) == 1 and lost[0].observed_value == 5 and speed.blocking
    # a longer tolerated lag than the rows' age makes the same data pass
    from expectations.catalog import Thresholds

    relaxed = _run(qschema, gx_root, thresholds=Thresholds(speed_lag_minutes=60))
    assert relaxed.suite("speed_scored_transactions").status == "passed"


def test_scores_out_of_range_and_missing_model_version_fail(qschema: QSchema, gx_root):
    events = make_events(10, 4, qschema.now)
    qschema.insert_events(events)
    qschema.insert_speed(events[:5])
    qschema.insert_speed(events[5:8], score=1.7)
    qschema.insert_speed(events[8:], model_version="")
    run = _run(qschema, gx_root)
    assert failing(run, "speed_scored_transactions") == {
        ("expect_column_values_to_be_between", "fraud_score"),
        ("expect_column_value_lengths_to_be_between", "model_version"),
    }


def test_a_warning_alone_does_not_block(qschema: QSchema, gx_root):
    _clean(qschema)
    odd = make_events(2, 5, qschema.now)
    for e in odd:
        e["ip_lat"] = 123.0  # outside the contract's latitude range: degraded geo feature, not a broken row
    qschema.insert_events(odd)
    qschema.insert_speed(odd)
    run = _run(qschema, gx_root)
    master = run.suite("master_transactions")
    assert failing(run, "master_transactions") == {("expect_column_values_to_be_between", "ip_lat")}
    assert not master.blocking and not run.blocking and run.score < 1.0


def test_suite_on_a_missing_table_reports_instead_of_crashing(qschema: QSchema, gx_root, stack):
    _clean(qschema)
    run = _run(
        qschema, gx_root, names=["master_transactions", "marts_fct_transactions", "analytics_rfm_customers"]
    )
    assert run.suite("master_transactions").status == "passed"
    for name, relation in [
        ("marts_fct_transactions", f"{qschema.name}.fct_transactions"),
        ("analytics_rfm_customers", f"{qschema.name}.rfm_customers"),
    ]:
        outcome = run.suite(name)
        assert outcome.status == "missing" and not outcome.blocking
        assert relation in outcome.missing
        assert relation in outcome.rows[0].details["reason"]
    assert not run.blocking
    assert {r["suite"] for r in results_for(stack, run.run_id)} >= {
        "marts_fct_transactions",
        "analytics_rfm_customers",
    }


def test_marts_reconcile_and_referential_integrity(qschema: QSchema, gx_root):
    """fct_transactions vs master up to the watermark, and an FK suite per dimension (tables built here)."""
    from expectations.catalog import ForeignKey

    events = make_events(12, 6, qschema.now - timedelta(hours=1))
    qschema.insert_events(events, landed_at=qschema.now - timedelta(minutes=30))
    s = qschema.name
    qschema.execute(
        f"CREATE TABLE {s}.fct_transactions AS SELECT transaction_id, merchant_id, landed_seq FROM {s}.transactions"
    )
    qschema.execute(f"CREATE TABLE {s}.dim_merchant AS SELECT DISTINCT merchant_id FROM {s}.transactions")
    fk = ForeignKey("fct_transactions", "merchant_id", "dim_merchant", "merchant_id")
    names = ["marts_fct_transactions", fk.suite_name]
    good = _run(qschema, gx_root, names=names, foreign_keys=[fk])
    assert good.suite("marts_fct_transactions").status == "passed"
    assert good.suite(fk.suite_name).status == "passed"
    # the batch layer lost a row below its watermark, and a merchant is missing from its dimension
    lost = events[0]["transaction_id"]
    qschema.execute(f"DELETE FROM {s}.fct_transactions WHERE transaction_id = %s", (lost,))
    qschema.execute(f"DELETE FROM {s}.dim_merchant WHERE merchant_id = %s", (events[1]["merchant_id"],))
    bad = _run(qschema, gx_root, names=names, foreign_keys=[fk])
    marts = bad.suite("marts_fct_transactions")
    assert marts.blocking and [r.observed_value for r in marts.failed] == [1]
    assert "watermark" in marts.failed[0].description
    assert bad.suite(fk.suite_name).blocking


@pytest.mark.slow
def test_cli_json_and_exit_code(qschema: QSchema, gx_root, capsys):
    # in-process through the real argparse entry point: a subprocess would pay the GX import twice more
    _clean(qschema)
    argv = ["quality", "--json", "--schema", qschema.name, "--context-dir", str(gx_root)]
    argv += ["--suite", "master_transactions", "--suite", "speed_scored_transactions"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["score"] == 1.0
    assert [(s["name"], s["success"], s["failed_expectations"]) for s in report["suites"]] == [
        ("master_transactions", True, []),
        ("speed_scored_transactions", True, []),
    ]
    _inject(qschema, "duplicate_ids")
    assert main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["score"] < 1.0 and report["blocking_failure"] is True
    master = report["suites"][0]
    assert master["success"] is False
    assert [f["expectation"] for f in master["failed_expectations"]] == [
        "expect_column_values_to_be_unique(transaction_id)"
    ]


def test_cli_bad_suite_name_is_one_line(capsys):
    assert main(["quality", "--suite", "no_such_suite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown suite no_such_suite" in err


def test_analytics_segments_and_lifetime_value(qschema: QSchema, gx_root):
    from analytics.rfm import SEGMENTS

    s = qschema.name
    qschema.execute(f"CREATE TABLE {s}.rfm_customers (customer_id text, segment text, r_score int)")
    qschema.execute(
        f"CREATE TABLE {s}.customer_ltv (customer_id text, p_alive double precision, "
        "expected_purchases_90d double precision, predicted_value_90d double precision)"
    )
    for i, seg in enumerate(SEGMENTS):
        qschema.execute(f"INSERT INTO {s}.rfm_customers VALUES (%s, %s, 3)", (f"C{i}", seg))
        qschema.execute(f"INSERT INTO {s}.customer_ltv VALUES (%s, 0.5, 1.2, 80.0)", (f"C{i}",))
    names = ["analytics_rfm_customers", "analytics_customer_ltv"]
    good = _run(qschema, gx_root, names=names)
    assert [good.suite(n).status for n in names] == ["passed", "passed"]
    qschema.execute(f"INSERT INTO {s}.rfm_customers VALUES ('C999', 'Big Spenders', 5)")  # not one of the 11
    qschema.execute(f"INSERT INTO {s}.customer_ltv VALUES ('C999', 1.5, 2.0, -10.0)")
    bad = _run(qschema, gx_root, names=names)
    assert failing(bad, "analytics_rfm_customers") == {
        ("expect_column_values_to_be_in_set", "segment"),
        ("expect_column_distinct_values_to_be_in_set", "segment"),
    }
    assert failing(bad, "analytics_customer_ltv") == {
        ("expect_column_values_to_be_between", "predicted_value_90d"),
        ("expect_column_values_to_be_between", "p_alive"),
    }
    assert bad.suite("analytics_rfm_customers").blocking and bad.suite("analytics_customer_ltv").blocking
