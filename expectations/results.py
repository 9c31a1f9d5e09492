"""Validation results -> rows of quality.expectation_results, and the severity-weighted quality score.

`expectation_rows()` and `score()` are pure (a GX validation result as a dict in, rows and a number out);
`store_rows()` is the only function here that touches Postgres. The weights live only here: each stored
row carries its weight, so the SQL views (kernel/sql/060_quality.sql) compute the same score without a copy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from kernel.db import connect
from kernel.settings import Settings

# a critical failure costs three warnings: it blocks the pipeline, a warning only flags it
SEVERITY_WEIGHTS: dict[str, float] = {"critical": 3.0, "warning": 1.0, "info": 0.0}
RESULTS_TABLE = "quality.expectation_results"
SAMPLE_VALUES = 10  # unexpected values kept per failed expectation (the full list is in the GX result store)


@dataclass(frozen=True)
class ExpectationRow:
    run_id: str
    suite: str
    data_asset: str
    expectation: str
    expectation_id: str | None
    description: str | None
    column: str | None
    severity: str
    weight: float
    success: bool
    observed_value: Any
    details: dict[str, Any]
    trigger: str
    run_at: datetime

    @property
    def label(self) -> str:
        """Short human name, e.g. `expect_column_values_to_be_unique(transaction_id)`."""
        return f"{self.expectation}({self.column})" if self.column else self.expectation


def _jsonable(value: Any) -> Any:
    """GX observed values can be Decimals, datetimes or numpy scalars: keep them readable in jsonb."""
    return json.loads(json.dumps(value, default=str))


def _observed(result: Mapping[str, Any]) -> Any:
    if "observed_value" in result:
        return result["observed_value"]
    if "unexpected_count" in result:
        return {
            "unexpected_count": result.get("unexpected_count"),
            "element_count": result.get("element_count"),
        }
    return None


def expectation_rows(
    validation: Mapping[str, Any],
    *,
    run_id: str,
    suite: str,
    data_asset: str,
    run_at: datetime,
    trigger: str = "cli",
) -> list[ExpectationRow]:
    """One row per expectation of a suite's validation result (GX `to_json_dict()` form)."""
    rows = []
    for r in validation.get("results", []):
        cfg = r.get("expectation_config") or {}
        kwargs = cfg.get("kwargs") or {}
        result = r.get("result") or {}
        exc = r.get("exception_info") or {}
        severity = str(cfg.get("severity") or "critical")
        details: dict[str, Any] = {
            k: result[k]
            for k in ("unexpected_count", "unexpected_percent", "element_count", "missing_count")
            if result.get(k) is not None
        }
        sample = result.get("partial_unexpected_list") or (result.get("details") or {}).get("unexpected_rows")
        if sample:
            details["unexpected_sample"] = list(sample)[:SAMPLE_VALUES]
        if exc.get("raised_exception"):
            details["exception"] = str(exc.get("exception_message"))[:1000]
        for k in ("min_value", "max_value", "value_set", "unexpected_rows_query"):
            if k in kwargs:
                details[k] = kwargs[k]
        rows.append(
            ExpectationRow(
                run_id=run_id,
                suite=suite,
                data_asset=data_asset,
                expectation=str(cfg.get("type")),
                expectation_id=cfg.get("id"),
                description=cfg.get("description"),
                column=kwargs.get("column"),
                severity=severity,
                weight=SEVERITY_WEIGHTS.get(severity, 1.0),
                success=bool(r.get("success")),
                observed_value=_jsonable(_observed(result)),
                details=_jsonable(details),
                trigger=trigger,
                run_at=run_at,
            )
        )
    return rows


def missing_relation_row(
    *, run_id: str, suite: str, data_asset: str, missing: Sequence[str], run_at: datetime, trigger: str
) -> ExpectationRow:
    """The record of a suite that could not run because a relation it reads does not exist (yet)."""
    return ExpectationRow(
        run_id=run_id,
        suite=suite,
        data_asset=data_asset,
        expectation="relation_exists",
        expectation_id=None,
        description=f"relations the suite reads exist: missing {', '.join(missing)}",
        column=None,
        severity="warning",
        weight=SEVERITY_WEIGHTS["warning"],
        success=False,
        observed_value={"missing": list(missing)},
        details={
            "reason": f"{', '.join(missing)} does not exist yet: build it (dbt / analytics assets) first"
        },
        trigger=trigger,
        run_at=run_at,
    )


def score(rows: Iterable[ExpectationRow]) -> float | None:
    """Share of expectations passed, weighted by severity; None when nothing was evaluated."""
    total = passed = 0.0
    for row in rows:
        total += row.weight
        passed += row.weight if row.success else 0.0
    return passed / total if total > 0 else None


def blocking_failures(rows: Iterable[ExpectationRow]) -> list[ExpectationRow]:
    return [r for r in rows if not r.success and r.severity == "critical"]


_COLUMNS = (
    "run_id", "suite", "data_asset", "expectation", "expectation_id", "description", "column",
    "severity", "weight", "success", "observed_value", "details", "trigger", "run_at",
)  # fmt: skip


def store_rows(
    rows: Sequence[ExpectationRow], settings: Settings | None = None, table: str = RESULTS_TABLE
) -> int:
    """Append the rows to the results table (one transaction). Returns the number written."""
    if not rows:
        return 0
    cols = ", ".join(f'"{c}"' for c in _COLUMNS)
    sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
    params = []
    for row in rows:
        d = asdict(row)
        d["observed_value"] = Jsonb(d["observed_value"])
        d["details"] = Jsonb(d["details"])
        params.append(tuple(d[c] for c in _COLUMNS))
    with connect(settings) as conn, conn.cursor() as cur:
        cur.executemany(sql, params)
    return len(rows)
