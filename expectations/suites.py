"""The expectation suites, defined in code from the event contract (never restating its enums or bounds).

Each suite is a `SuiteSpec`: the relation it validates, the Dagster asset it guards, the relations its
queries read, and a list of GX 1.x expectations, each with a severity: `critical` expectations are
blocking (a failure stops the assets downstream and makes `ecom quality` exit non-zero), `warning` ones
are recorded and lower the score but block nothing.

Everything here is pure: `build_suites(targets, thresholds, columns)` takes the relation names (so tests
point the very same suites at a throwaway schema), the tolerances, and the columns each relation has
(introspected by the runner, so suites over tables other rooms build follow their DDL as it changes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import great_expectations as gx
from great_expectations.expectations import Expectation

from events.contract import SUPPORTED_SCHEMA_VERSIONS, enum_values, field_names, load_schema
from expectations.catalog import CRITICAL, SUITE_ASSETS, WARNING, ForeignKey, Targets, Thresholds


@dataclass
class SuiteSpec:
    """One suite: what it validates, what it guards, and its expectations."""

    name: str
    relation: str  # schema.table the GX table asset points at ({batch} in queries)
    asset_key: tuple[str, ...]  # Dagster asset the check is attached to
    description: str
    expectations: list[Expectation] = field(default_factory=list)
    reads: tuple[str, ...] = ()  # other relations the queries read: all must exist to run the suite

    @property
    def schema(self) -> str:
        return self.relation.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.relation.split(".", 1)[1]

    def gx_suite(self) -> gx.ExpectationSuite:
        return gx.ExpectationSuite(
            name=self.name, expectations=[e.copy(deep=True) for e in self.expectations]
        )


def _contract_bounds(field_name: str) -> dict[str, object]:
    """min/max kwargs for expect_column_values_to_be_between from the contract's JSON Schema."""
    spec = load_schema("transaction")["properties"][field_name]
    kwargs: dict[str, object] = {}
    if "exclusiveMinimum" in spec:
        kwargs.update(min_value=spec["exclusiveMinimum"], strict_min=True)
    elif "minimum" in spec:
        kwargs["min_value"] = spec["minimum"]
    if "exclusiveMaximum" in spec:
        kwargs.update(max_value=spec["exclusiveMaximum"], strict_max=True)
    elif "maximum" in spec:
        kwargs["max_value"] = spec["maximum"]
    return kwargs


def _rows(query: str, description: str, severity: str) -> Expectation:
    return gx.expectations.UnexpectedRowsExpectation(
        unexpected_rows_query=query, description=description, severity=severity
    )


def master_suite(t: Targets, th: Thresholds) -> SuiteSpec:
    """The master dataset against the contract: columns, nulls, unique ids, enums, bounds, time, version."""
    contract = load_schema("transaction")
    key_fields = {"transaction_id", "customer_id", "merchant_id", "terminal_id", "event_time", "amount"}
    ex: list[Expectation] = []
    for name in field_names("transaction"):
        ex.append(gx.expectations.ExpectColumnToExist(column=name, severity=CRITICAL))
    for name in contract["required"]:
        # ids, time and money make a row unusable when missing; a missing IP geo field only degrades features
        enum_or_key = name in key_fields or name in enum_values("transaction") or name == "schema_version"
        severity = CRITICAL if enum_or_key or name == "line_items" else WARNING
        ex.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=name, severity=severity))
    ex.append(gx.expectations.ExpectColumnValuesToBeUnique(column="transaction_id", severity=CRITICAL))
    for name, values in enum_values("transaction").items():
        ex.append(
            gx.expectations.ExpectColumnValuesToBeInSet(column=name, value_set=values, severity=CRITICAL)
        )
    ex.append(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="schema_version", value_set=sorted(SUPPORTED_SCHEMA_VERSIONS), severity=CRITICAL
        )
    )
    ex.append(
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="amount", **_contract_bounds("amount"), severity=CRITICAL
        )
    )
    for name in ("ip_lat", "ip_lon"):
        ex.append(
            gx.expectations.ExpectColumnValuesToBeBetween(
                column=name, **_contract_bounds(name), severity=WARNING
            )
        )
    tol = int(th.future_tolerance_minutes)
    ex.append(
        _rows(
            # no alias on {batch}: without a JOIN in the query GX aliases the batch itself
            "SELECT transaction_id, event_time, landed_at FROM {batch} "
            f"WHERE event_time > LEAST(COALESCE(landed_at, now()), now()) + interval '{tol} minutes'",
            f"event_time is not in the future: no transaction dated more than {tol} min after it landed",
            CRITICAL,
        )
    )
    ex.append(
        _rows(
            "SELECT transaction_id, amount FROM {batch} "
            "WHERE jsonb_typeof(line_items) = 'array' AND abs(amount - (SELECT round(sum("
            "(li.value->>'quantity')::numeric * (li.value->>'unit_price')::numeric), 2) "
            "FROM jsonb_array_elements(line_items) li)) > 0.01",
            "amount equals the sum of quantity x unit_price over line_items (to the cent)",
            WARNING,
        )
    )
    ex.append(gx.expectations.ExpectTableRowCountToBeBetween(min_value=1, severity=WARNING))
    return SuiteSpec(
        name="master_transactions",
        relation=t.master_transactions,
        asset_key=SUITE_ASSETS["master_transactions"],
        description="Master dataset (batch-layer input) against the event contract",
        expectations=ex,
    )


def speed_suite(t: Targets, th: Thresholds) -> SuiteSpec:
    """Speed layer: every row scored in range by a known model, nothing lost against the master dataset."""
    lag = int(th.speed_lag_minutes)
    ex: list[Expectation] = [
        gx.expectations.ExpectColumnToExist(column=c, severity=CRITICAL)
        for c in ("transaction_id", "fraud_score", "model_version", "is_alert", "event_time")
    ]
    ex += [
        gx.expectations.ExpectColumnValuesToNotBeNull(column="transaction_id", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToBeUnique(column="transaction_id", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="fraud_score", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="fraud_score", min_value=0, max_value=1, severity=CRITICAL
        ),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="model_version", severity=CRITICAL),
        gx.expectations.ExpectColumnValueLengthsToBeBetween(
            column="model_version", min_value=1, severity=CRITICAL
        ),
        _rows(
            # anti-joins are written as LEFT JOIN ... IS NULL: with a JOIN in the query GX leaves the
            # aliasing of {batch} to us
            f"SELECT m.transaction_id, m.landed_at FROM {t.master_transactions} m "
            "LEFT JOIN {batch} s ON s.transaction_id = m.transaction_id "
            f"WHERE s.transaction_id IS NULL AND m.landed_at < now() - interval '{lag} minutes'",
            f"no master transaction older than {lag} min is missing from the speed layer",
            CRITICAL,
        ),
        _rows(
            "SELECT s.transaction_id, s.committed_at FROM {batch} s "
            f"LEFT JOIN {t.master_transactions} m ON m.transaction_id = s.transaction_id "
            f"WHERE m.transaction_id IS NULL AND s.committed_at < now() - interval '{lag} minutes'",
            f"every speed row older than {lag} min has landed in the master dataset",
            WARNING,
        ),
    ]
    return SuiteSpec(
        name="speed_scored_transactions",
        relation=t.speed_scored,
        asset_key=SUITE_ASSETS["speed_scored_transactions"],
        description="Speed layer: fraud scores in range, model version recorded, nothing missing vs master",
        expectations=ex,
        reads=(t.master_transactions,),
    )


def marts_suite(t: Targets, th: Thresholds, columns: Mapping[str, Sequence[str]]) -> SuiteSpec:
    """Marts: fct_transactions reconciles with master up to the batch watermark, one row per transaction."""
    fct = t.relations()["fct_transactions"]
    fct_cols = set(columns.get(fct, ()))
    commit = int(th.landing_commit_minutes)
    ex: list[Expectation] = [
        gx.expectations.ExpectColumnToExist(column="transaction_id", severity=CRITICAL),
        gx.expectations.ExpectColumnToExist(column="landed_seq", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="transaction_id", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToBeUnique(column="transaction_id", severity=CRITICAL),
    ]
    reads = [t.master_transactions]
    if "landed_seq" in fct_cols:
        # the batch watermark is the highest landing sequence the fact has taken in (what
        # marts.batch_watermark records after the build): every master row at or below it must be in the
        # fact. Rows whose landing transaction may still have been open during the build (landed in the last
        # few minutes) are the next build's, by the model's late-landing lookback
        ex.append(
            _rows(
                f"SELECT m.transaction_id, m.landed_seq FROM {t.master_transactions} m "
                "LEFT JOIN {batch} f ON f.transaction_id = m.transaction_id "
                "WHERE f.transaction_id IS NULL "
                "AND m.landed_seq <= (SELECT max(w.landed_seq) FROM {batch} w) "
                f"AND m.landed_at < now() - interval '{commit} minutes'",
                "row counts reconcile: fct_transactions holds every master transaction up to the batch "
                "watermark (max landed_seq)",
                CRITICAL,
            )
        )
    ex.append(
        _rows(
            f"SELECT f.transaction_id FROM {{batch}} f LEFT JOIN {t.master_transactions} m "
            "ON m.transaction_id = f.transaction_id WHERE m.transaction_id IS NULL",
            "row counts reconcile: every fct_transactions row comes from the master dataset",
            CRITICAL,
        )
    )
    return SuiteSpec(
        name="marts_fct_transactions",
        relation=fct,
        asset_key=SUITE_ASSETS["marts_fct_transactions"],
        description="Star schema: the fact reconciles with master up to the batch watermark",
        expectations=ex,
        reads=tuple(dict.fromkeys(reads)),
    )


def rfm_suite(t: Targets, th: Thresholds) -> SuiteSpec:
    from analytics.rfm import SEGMENTS  # the 11 names are the analytics room's; never restated here

    ex: list[Expectation] = [
        gx.expectations.ExpectColumnToExist(column="customer_id", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="customer_id", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToBeUnique(column="customer_id", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="segment", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="segment", value_set=list(SEGMENTS), severity=CRITICAL
        ),
        gx.expectations.ExpectColumnDistinctValuesToBeInSet(
            column="segment", value_set=list(SEGMENTS), severity=WARNING
        ),
    ]
    return SuiteSpec(
        name="analytics_rfm_customers",
        relation=t.relations()["rfm_customers"],
        asset_key=SUITE_ASSETS["analytics_rfm_customers"],
        description="RFM: one row per customer, every segment among the 11 named segments",
        expectations=ex,
    )


# lifetime-value columns that are money or counts (must be >= 0) and probabilities (in [0, 1])
LTV_NONNEGATIVE_PREFIXES = (
    "predicted_value_",
    "expected_purchases_",
    "expected_avg_spend",
    "monetary_value",
    "ltv",
    "clv",
)
LTV_PROBABILITY_COLUMNS = ("p_alive",)


def ltv_suite(t: Targets, th: Thresholds, columns: Mapping[str, Sequence[str]]) -> SuiteSpec:
    rel = t.relations()["customer_ltv"]
    cols = list(columns.get(rel, ()))
    ex: list[Expectation] = [
        gx.expectations.ExpectColumnToExist(column="customer_id", severity=CRITICAL),
        gx.expectations.ExpectColumnValuesToBeUnique(column="customer_id", severity=CRITICAL),
    ]
    value_cols = [c for c in cols if c.startswith(LTV_NONNEGATIVE_PREFIXES)]
    for c in value_cols:
        ex.append(gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=0, severity=CRITICAL))
    for c in cols:
        if c in LTV_PROBABILITY_COLUMNS:
            ex.append(
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column=c, min_value=0, max_value=1, severity=CRITICAL
                )
            )
    if cols and not value_cols:
        # the table exists but none of its columns looks like a value: say so instead of passing silently
        ex.append(gx.expectations.ExpectColumnToExist(column="predicted_value_365d", severity=WARNING))
    return SuiteSpec(
        name="analytics_customer_ltv",
        relation=rel,
        asset_key=SUITE_ASSETS["analytics_customer_ltv"],
        description="Customer lifetime value: value and purchase columns >= 0, probabilities in [0, 1]",
        expectations=ex,
    )


def fk_suite(t: Targets, fk: ForeignKey) -> SuiteSpec:
    """Referential integrity of one fact foreign key, attached to the dimension it points at.

    One suite per dimension (not one for the whole star) because the dimensions are built *after* the fact
    (their inferred members come from it): the check on `dim_x` runs once dim_x is built and blocks only
    what reads dim_x.
    """
    dim = f"{t.marts_schema}.{fk.dim_model}"
    col, dcol = fk.column, fk.dim_column
    ex: list[Expectation] = [
        _rows(
            f"SELECT f.transaction_id, f.{col} FROM {{batch}} f LEFT JOIN {dim} d ON d.{dcol} = f.{col} "
            f"WHERE f.{col} IS NOT NULL AND d.{dcol} IS NULL",
            f"referential integrity: every {fk.model}.{col} exists in {fk.dim_model}.{dcol}",
            CRITICAL,
        )
    ]
    return SuiteSpec(
        name=fk.suite_name,
        relation=f"{t.marts_schema}.{fk.model}",
        asset_key=fk.asset_key,
        description=f"Referential integrity: {fk.model}.{col} -> {fk.dim_model}.{dcol}",
        expectations=ex,
        reads=(dim,),
    )


SuiteBuilder = Callable[[Targets, Thresholds, Mapping[str, Sequence[str]]], SuiteSpec]

BUILDERS: dict[str, SuiteBuilder] = {
    "master_transactions": lambda t, th, cols: master_suite(t, th),
    "speed_scored_transactions": lambda t, th, cols: speed_suite(t, th),
    "marts_fct_transactions": marts_suite,
    "analytics_rfm_customers": lambda t, th, cols: rfm_suite(t, th),
    "analytics_customer_ltv": ltv_suite,
}
assert set(BUILDERS) == set(SUITE_ASSETS)


def build_suites(
    targets: Targets | None = None,
    thresholds: Thresholds | None = None,
    columns: Mapping[str, Sequence[str]] | None = None,
    names: Sequence[str] | None = None,
    foreign_keys: Sequence[ForeignKey] = (),
) -> list[SuiteSpec]:
    """The suites named (all by default): the fixed ones plus one per declared fact foreign key."""
    t, th, cols = targets or Targets(), thresholds or Thresholds(), columns or {}
    fk_by_name = {fk.suite_name: fk for fk in foreign_keys}
    known = [*BUILDERS, *fk_by_name]
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; known: {known}")
    return [
        fk_suite(t, fk_by_name[n]) if n in fk_by_name else BUILDERS[n](t, th, cols) for n in (names or known)
    ]
