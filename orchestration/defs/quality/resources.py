"""The GX runner as a Dagster resource: where the context lives, which relations, which tolerances.

Production uses the defaults (the context generated from expectations/suites.py into .local/gx, the
platform's relations); tests build the same checks with a resource pointing at a throwaway schema and a
temporary context folder. The database is the check's `postgres` resource (orchestration.resources), handed to `run` as settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from expectations.catalog import Targets, Thresholds
from kernel.settings import Settings


class QualityResource(dg.ConfigurableResource):
    """Runs expectation suites (expectations.runner) and stores every result in quality.expectation_results."""

    project_root: str | None = None  # GX project root (context in <root>/gx); None = settings.gx_context_dir
    master_transactions: str = Targets.master_transactions
    speed_scored: str = Targets.speed_scored
    marts_schema: str = Targets.marts_schema
    analytics_schema: str = Targets.analytics_schema
    speed_lag_minutes: int = Thresholds.speed_lag_minutes
    future_tolerance_minutes: int = Thresholds.future_tolerance_minutes
    landing_commit_minutes: int = Thresholds.landing_commit_minutes
    trigger: str = "dagster"

    @property
    def targets(self) -> Targets:
        return Targets(self.master_transactions, self.speed_scored, self.marts_schema, self.analytics_schema)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.speed_lag_minutes, self.future_tolerance_minutes, self.landing_commit_minutes)

    def run(self, names: Sequence[str], run_id: str, settings: Settings):  # -> expectations.runner.QualityRun
        from expectations.runner import run_suites  # GX is slow to import: only when a check executes

        return run_suites(
            names,
            targets=self.targets,
            thresholds=self.thresholds,
            settings=settings,
            project_root=Path(self.project_root) if self.project_root else None,
            run_id=run_id,
            trigger=self.trigger,
        )
