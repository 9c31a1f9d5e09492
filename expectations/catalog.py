"""What the quality room checks and where, without importing Great Expectations (cheap to import).

Suite names, the Dagster asset each suite guards, the relations the suites read (`Targets`, so tests can
point them at a throwaway schema) and the time tolerances (`Thresholds`). The expectations themselves are
in `expectations/suites.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        """Logical name -> relation for every table a suite may read."""
        m, a = self.marts_schema, self.analytics_schema
        return {
            "master_transactions": self.master_transactions,
            "speed_scored": self.speed_scored,
            "fct_transactions": f"{m}.fct_transactions",
            "dim_customer": f"{m}.dim_customer",
            "dim_product": f"{m}.dim_product",
            "dim_merchant": f"{m}.dim_merchant",
            "dim_terminal": f"{m}.dim_terminal",
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


# Suite name -> Dagster asset it guards. Static so the Dagster checks exist before the tables do.
SUITE_ASSETS: dict[str, tuple[str, ...]] = {
    "master_transactions": ("master", "transactions"),
    "speed_scored_transactions": ("speed", "scored_transactions"),
    "marts_fct_transactions": ("marts", "fct_transactions"),
    "analytics_rfm_customers": ("analytics", "rfm_customers"),
    "analytics_customer_ltv": ("analytics", "customer_ltv"),
}


def suite_names() -> list[str]:
    return list(SUITE_ASSETS)
