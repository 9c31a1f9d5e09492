"""A failing critical expectation stops the assets downstream of the checked asset, and only those.

The production checks (orchestration.defs.quality.build_quality_checks) run in-process with dg.materialize,
their QualityResource pointed at a throwaway schema. Stand-in assets carry the production keys
["master","transactions"] and ["speed","scored_transactions"]; one downstream asset hangs off each.
"""

from __future__ import annotations

import dagster as dg
import pytest

from expectations.catalog import SUITE_ASSETS
from kernel.db import connect
from kernel.settings import get_settings
from orchestration.defs.quality.checks import build_quality_checks
from orchestration.defs.quality.resources import QualityResource
from orchestration.resources import resources_from_settings
from tests.expectations.support import QSchema, make_events

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MASTER = dg.AssetKey(list(SUITE_ASSETS["master_transactions"]))
SPEED = dg.AssetKey(list(SUITE_ASSETS["speed_scored_transactions"]))
STAGING = dg.AssetKey(["staging", "stg_master__transactions"])
SPEED_READER = dg.AssetKey(["qtest", "speed_reader"])


def _graph():
    @dg.asset(key=MASTER)
    def master_transactions() -> None:
        """Stand-in: the rows are already in the qtest schema."""

    @dg.asset(key=SPEED)
    def speed_scored() -> None:
        """Stand-in for the stream's output."""

    @dg.asset(key=STAGING, deps=[MASTER])
    def staging() -> None:
        """Downstream of master: must not run when master's blocking check fails."""

    @dg.asset(key=SPEED_READER, deps=[SPEED])
    def speed_reader() -> None:
        """Downstream of speed only: runs when speed is clean, whatever master looks like."""

    checks = build_quality_checks(
        {
            "master_transactions": SUITE_ASSETS["master_transactions"],
            "speed_scored_transactions": SUITE_ASSETS["speed_scored_transactions"],
        }
    )
    return [master_transactions, speed_scored, staging, speed_reader, *checks]


def _materialize(q: QSchema, gx_root) -> dg.ExecuteInProcessResult:
    resource = QualityResource(
        project_root=str(gx_root),
        master_transactions=f"{q.name}.transactions",
        speed_scored=f"{q.name}.scored_transactions",
        marts_schema=q.name,
        analytics_schema=q.name,
        trigger="test",
    )
    postgres = resources_from_settings(get_settings())["postgres"]
    return dg.materialize(
        _graph(), resources={"quality": resource, "postgres": postgres}, raise_on_error=False
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_bad_master_rows_block_only_master_downstream(qschema: QSchema, gx_root, stack):
    clean = make_events(30, 11, qschema.now)
    qschema.insert_events(clean)
    qschema.insert_speed(clean)

    ok = _materialize(qschema, gx_root)
    assert ok.success
    assert {STAGING, SPEED_READER} <= _materialized(ok)
    assert all(e.passed for e in _evaluations(ok).values())

    bad = make_events(2, 12, qschema.now)
    for e in bad:
        e["amount"] = -abs(e["amount"])  # negative amounts: a critical expectation
    qschema.insert_events(bad)
    qschema.insert_speed(bad)

    blocked = _materialize(qschema, gx_root)
    evals = _evaluations(blocked)
    master_eval = evals["gx_master_transactions"]
    assert not master_eval.passed and master_eval.severity == dg.AssetCheckSeverity.ERROR
    assert evals["gx_speed_scored_transactions"].passed
    done = _materialized(blocked)
    assert STAGING not in done  # the gate held
    assert SPEED_READER in done  # ...and only for what depends on the failing asset
    assert not blocked.success
    # every expectation result of the Dagster run is in the quality table under the Dagster run id
    with connect(stack) as conn:
        rows = conn.execute(
            "SELECT suite, count(*), count(*) FILTER (WHERE NOT success) FROM quality.expectation_results "
            "WHERE run_id = %s AND trigger = 'test' GROUP BY suite ORDER BY suite",
            (blocked.run_id,),
        ).fetchall()
    assert [(suite, failed > 0) for suite, _n, failed in rows] == [
        ("master_transactions", True),
        ("speed_scored_transactions", False),
    ]
    failed_meta = master_eval.metadata["failed_expectations"].value
    assert any(f["expectation"] == "expect_column_values_to_be_between(amount)" for f in failed_meta)


def test_failed_warning_is_reported_but_does_not_block(qschema: QSchema, gx_root):
    events = make_events(10, 13, qschema.now)
    for e in events[:2]:
        e["ip_lon"] = 500.0  # out of the contract's range: a warning-level expectation
    qschema.insert_events(events)
    qschema.insert_speed(events)
    result = _materialize(qschema, gx_root)
    master_eval = _evaluations(result)["gx_master_transactions"]
    assert not master_eval.passed and master_eval.severity == dg.AssetCheckSeverity.WARN
    assert STAGING in _materialized(result)
    assert result.success
