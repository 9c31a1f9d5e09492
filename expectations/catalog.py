"""What the quality room checks and where, without importing Great Expectations (cheap to import).

Suite names, the Dagster asset each suite guards, the relations the suites read (`Targets`, so tests can
point them at a throwaway schema) and the time tolerances (`Thresholds`). The expectations themselves are
in `expectations/suites.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CRITICAL = "critical"
WARNING = "warning"


@dataclass(frozen=True)
class Targets:
    """Where the suites look. Defaults are the platform's relations; tests pass a throwaway schema."""

    master_transactions: str = "master.transactions"
    speed_scored: str = "speed.scored_transactions"
    marts_schema: str = "marts"
    analytics_schema: str = "analytics"

    @classmethod
    def in_schema(cls, schema: str) -> Targets:
        """Every relation in one schema (tests: `qtest_<uuid>.transactions`, `.scored_transactions`, ...)."""
        return cls(f"{schema}.transactions", f"{schema}.scored_transactions", schema, schema)

    def relations(self) -> dict[str, str]:
        """Logical name -> relation of each suite's table (dimensions come from the dbt foreign keys)."""
        m, a = self.marts_schema, self.analytics_schema
        return {
            "master_transactions": self.master_transactions,
            "speed_scored": self.speed_scored,
            "fct_transactions": f"{m}.fct_transactions",
            "rfm_customers": f"{a}.rfm_customers",
            "customer_ltv": f"{a}.customer_ltv",
        }


@dataclass(frozen=True)
class Thresholds:
    """Tolerances of the time-based expectations (CLI flags override them)."""

    # the stream commits a micro-batch every few seconds; a master row older than this without a speed
    # row means the speed layer lost it (or is down), not that it is merely behind
    speed_lag_minutes: int = 15
    # clocks of producers and the database drift a little; more than this is an event from the future
    future_tolerance_minutes: int = 5
    # a landing transaction commits within seconds; rows landed more recently than this may still have been
    # invisible to the batch build and are left to the next one (fct_transactions' late-landing lookback)
    landing_commit_minutes: int = 5


# Suite name -> Dagster asset it guards. Static so the Dagster checks exist before the tables do.
SUITE_ASSETS: dict[str, tuple[str, ...]] = {
    "master_transactions": ("master", "transactions"),
    "speed_scored_transactions": ("speed", "scored_transactions"),
    "marts_fct_transactions": ("marts", "fct_transactions"),
    "analytics_rfm_customers": ("analytics", "rfm_customers"),
    "analytics_customer_ltv": ("analytics", "customer_ltv"),
}


FACT_MODEL = "fct_transactions"
MARTS_ASSET_SCHEMA = "marts"  # Dagster asset keys name the production schema, whatever Targets says


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key of a fact, as the dbt project declares it (a `relationships` test)."""

    model: str
    column: str
    dim_model: str
    dim_column: str

    @property
    def suite_name(self) -> str:
        return f"marts_fk_{self.dim_model}"

    @property
    def asset_key(self) -> tuple[str, ...]:
        return (MARTS_ASSET_SCHEMA, self.dim_model)


REF_PATTERN = re.compile(r"ref\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)")


def declared_foreign_keys(
    model_docs: Iterable[Mapping[str, Any]], model: str = FACT_MODEL
) -> list[ForeignKey]:
    """(column, referenced model, referenced column) of every dbt `relationships` test on `model`.

    The star's foreign keys are declared once, in the dbt project's YAML; the marts suite reads them
    from there instead of keeping a second list.
    """
    fks = []
    for doc in model_docs:
        for m in (doc or {}).get("models", []) or []:
            if m.get("name") != model:
                continue
            for col in m.get("columns", []) or []:
                for test in col.get("data_tests", col.get("tests", [])) or []:
                    if not isinstance(test, Mapping) or "relationships" not in test:
                        continue
                    spec = test["relationships"] or {}
                    args = spec.get("arguments", spec)
                    match = REF_PATTERN.search(str(args.get("to", "")))
                    if match and args.get("field"):
                        fks.append(ForeignKey(model, col["name"], match.group(1), args["field"]))
    return fks


def load_dbt_model_docs(project_dir: Path) -> list[dict[str, Any]]:
    """The YAML property files of the dbt project's marts (where fct_/dim_ keys are declared)."""
    docs = []
    for path in sorted((project_dir / "models").rglob("*.yml")):
        docs.append(yaml.safe_load(path.read_text()) or {})
    return docs


def fact_foreign_keys(project_dir: Path) -> list[ForeignKey]:
    """The fact's foreign keys declared in the dbt project (none when the project has no YAML yet)."""
    return declared_foreign_keys(load_dbt_model_docs(project_dir), FACT_MODEL)


def suite_assets(project_dir: Path) -> dict[str, tuple[str, ...]]:
    """Every suite name -> the Dagster asset its check is attached to (fixed suites + one per FK)."""
    return {**SUITE_ASSETS, **{fk.suite_name: fk.asset_key for fk in fact_foreign_keys(project_dir)}}


def suite_names(project_dir: Path | None = None) -> list[str]:
    if project_dir is None:
        from kernel.settings import get_settings

        project_dir = get_settings().dbt.project_dir
    return list(suite_assets(project_dir))
