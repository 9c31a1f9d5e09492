"""Pure pieces of the quality room: suites derived from the contract, the score, result rows, dbt FKs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.contract import enum_values, field_names, numeric_bounds
from expectations.catalog import (
    SUITE_ASSETS,
    ForeignKey,
    Targets,
    Thresholds,
    declared_foreign_keys,
    suite_assets,
)
from expectations.results import SEVERITY_WEIGHTS, ExpectationRow, expectation_rows, score
from expectations.suites import build_suites, master_suite


def _configs(spec):
    return [e.configuration.to_json_dict() for e in spec.expectations]


def test_master_suite_follows_the_contract():
    spec = master_suite(Targets(), Thresholds())
    cfgs = _configs(spec)
    in_set = {
        c["kwargs"]["column"]: c["kwargs"]["value_set"]
        for c in cfgs
        if c["type"] == "expect_column_values_to_be_in_set"
    }
    for name, values in enum_values("transaction").items():
        assert in_set[name] == values
        assert (
            next(c for c in cfgs if c["kwargs"].get("column") == name and c["type"].endswith("in_set"))[
                "severity"
            ]
            == "critical"
        )
    exist = {c["kwargs"]["column"] for c in cfgs if c["type"] == "expect_column_to_exist"}
    assert exist == set(field_names("transaction"))
    amount = next(
        c
        for c in cfgs
        if c["type"] == "expect_column_values_to_be_between" and c["kwargs"]["column"] == "amount"
    )
    lo, hi = numeric_bounds("transaction")["amount"]
    assert (amount["kwargs"]["min_value"], amount["kwargs"]["max_value"]) == (lo, hi)
    assert amount["kwargs"]["strict_min"] is True  # the contract says exclusiveMinimum: 0 means amount > 0
    unique = [c for c in cfgs if c["type"] == "expect_column_values_to_be_unique"]
    assert [c["kwargs"]["column"] for c in unique] == ["transaction_id"]


def test_targets_and_thresholds_reach_the_queries():
    t = Targets.in_schema("qtest_abc")
    specs = {s.name: s for s in build_suites(t, Thresholds(speed_lag_minutes=7, future_tolerance_minutes=3))}
    assert specs["master_transactions"].relation == "qtest_abc.transactions"
    queries = [
        c["kwargs"].get("unexpected_rows_query", "") for c in _configs(specs["speed_scored_transactions"])
    ]
    assert any("qtest_abc.transactions" in q and "7 minutes" in q for q in queries)
    assert not any("master.transactions" in q for q in queries)
    future = [c["kwargs"].get("unexpected_rows_query", "") for c in _configs(specs["master_transactions"])]
    assert any("3 minutes" in q for q in future)


def test_fk_suites_come_from_the_dbt_relationships():
    docs = [
        {
            "models": [
                {
                    "name": "fct_transactions",
                    "columns": [
                        {"name": "transaction_id", "data_tests": ["unique", "not_null"]},
                        {
                            "name": "customer_sk",
                            "data_tests": [
                                "not_null",
                                {
                                    "relationships": {
                                        "arguments": {"to": "ref('dim_customer')", "field": "customer_sk"}
                                    }
                                },
                            ],
                        },
                        {
                            "name": "date_key",
                            "tests": [{"relationships": {"to": 'ref("dim_date")', "field": "date_key"}}],
                        },
                    ],
                },
                {"name": "dim_customer", "columns": [{"name": "customer_sk", "data_tests": ["unique"]}]},
            ]
        }
    ]
    fks = declared_foreign_keys(docs)
    assert fks == [
        ForeignKey("fct_transactions", "customer_sk", "dim_customer", "customer_sk"),
        ForeignKey("fct_transactions", "date_key", "dim_date", "date_key"),
    ]
    specs = build_suites(Targets(), Thresholds(), names=["marts_fk_dim_date"], foreign_keys=fks)
    assert specs[0].asset_key == ("marts", "dim_date") and specs[0].reads == ("marts.dim_date",)


def test_every_fixed_suite_has_an_asset_and_repo_fks_are_found(settings):
    assets = suite_assets(settings.dbt.project_dir)
    assert set(SUITE_ASSETS) <= set(assets)
    # the dbt project declares the fact's foreign keys; each becomes a suite on its dimension
    assert any(name.startswith("marts_fk_") for name in assets)


def _row(success: bool, severity: str) -> ExpectationRow:
    return ExpectationRow(
        "r", "s", "a", "expect_x", None, None, None, severity, SEVERITY_WEIGHTS[severity], success, None, {}, "test",
        datetime.now(UTC),
    )  # fmt: skip


def test_score_is_severity_weighted():
    assert score([]) is None
    assert score([_row(True, "critical"), _row(True, "warning")]) == 1.0
    crit_fail = score([_row(False, "critical"), _row(True, "warning")])
    warn_fail = score([_row(True, "critical"), _row(False, "warning")])
    # one failed critical expectation costs more than one failed warning
    assert crit_fail < warn_fail < 1.0
    w_c, w_w = SEVERITY_WEIGHTS["critical"], SEVERITY_WEIGHTS["warning"]
    assert crit_fail == pytest.approx(w_w / (w_c + w_w))


def test_expectation_rows_from_a_validation_result():
    validation = {
        "results": [
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_values_to_not_be_null",
                    "kwargs": {"column": "transaction_id", "batch_id": "b"},
                    "id": "e1",
                    "severity": "critical",
                },
                "result": {"element_count": 10, "unexpected_count": 2, "unexpected_percent": 20.0},
                "exception_info": {"raised_exception": False},
            },
            {
                "success": True,
                "expectation_config": {
                    "type": "unexpected_rows_expectation",
                    "kwargs": {"unexpected_rows_query": "SELECT 1"},
                    "description": "nothing odd",
                    "severity": "warning",
                },
                "result": {"observed_value": 0},
            },
        ]
    }
    rows = expectation_rows(validation, run_id="r1", suite="s", data_asset="x.y", run_at=datetime.now(UTC))
    assert [(r.expectation, r.column, r.severity, r.success) for r in rows] == [
        ("expect_column_values_to_not_be_null", "transaction_id", "critical", False),
        ("unexpected_rows_expectation", None, "warning", True),
    ]
    assert rows[0].observed_value == {"unexpected_count": 2, "element_count": 10}
    assert rows[1].observed_value == 0 and rows[1].description == "nothing odd"
    assert rows[0].weight == SEVERITY_WEIGHTS["critical"]


def test_unreachable_postgres_is_one_actionable_error(settings, tmp_path):
    import dataclasses

    from expectations.runner import run_suites
    from kernel.errors import EcomError

    nowhere = dataclasses.replace(settings, postgres=dataclasses.replace(settings.postgres, port=1))
    with pytest.raises(EcomError) as err:
        run_suites(settings=nowhere, project_root=tmp_path, store=False)
    message = str(err.value)
    assert "cannot reach Postgres at" in message and ":1/" in message and "ecom up" in message
    assert "\n" not in message


def test_suites_have_one_source_the_code_and_the_context_is_local_state():
    """The GX context is generated into the git-ignored state folder; no rendering of a suite is committed."""
    import subprocess

    from kernel.settings import get_settings

    s = get_settings()
    assert s.gx_context_dir.is_relative_to(s.state_dir)
    tracked = subprocess.run(
        ["git", "ls-files", "--", "*.json", "*great_expectations.yml"],
        cwd=s.repo_root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not [p for p in tracked if p.startswith("expectations/") or "/gx/" in p], tracked
