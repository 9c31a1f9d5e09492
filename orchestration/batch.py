"""Run the batch layer through Dagster, the same job a click on "Materialize all" in the UI launches.

`run_batch()` executes the `batch_refresh` job of the assembled Definitions in this process, against the
Dagster instance at DAGSTER_HOME (Postgres storage), so the run, its materializations and every dbt test
(as asset check evaluations) are recorded where the UI shows them. The outcome is summarised by pure
functions so the CLI can exit non-zero when a check failed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from kernel.settings import Settings, get_settings, service_env


@dataclass(frozen=True)
class CheckOutcome:
    asset: str
    name: str
    passed: bool
    severity: str


@dataclass
class BatchOutcome:
    run_id: str
    success: bool
    seconds: float
    materialized: list[str] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    # an increment with nothing to build (no source changed since the last build) launches no run
    nothing_changed: bool = False

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed]

    @property
    def failed_blocking(self) -> list[CheckOutcome]:
        return [c for c in self.failed_checks if c.severity == "ERROR"]

    @property
    def ok(self) -> bool:
        return self.success and not self.failed_blocking


def dagster_env(settings: Settings | None = None) -> dict[str, str]:
    """What a process needs to open the shared Dagster instance (DAGSTER_HOME + its storage URL)."""
    s = settings or get_settings()
    return {
        **service_env(s),
        "DAGSTER_HOME": str(s.dagster.home),
        "ECOM_DAGSTER_PG_URL": s.postgres.url(s.postgres.dagster_db, driver="psycopg2"),
    }


def summarize(outcome: BatchOutcome) -> list[str]:
    """Lines for the terminal: what was built, what failed, and the verdict."""
    if outcome.nothing_changed:
        return [
            "nothing to build: no source of the dbt project changed since the last build "
            "(`ecom batch --full-refresh` rebuilds everything)"
        ]
    lines = [
        f"run {outcome.run_id}: {'succeeded' if outcome.success else 'FAILED'} in {outcome.seconds:.1f} s; "
        f"{len(outcome.materialized)} assets materialized, {len(outcome.checks)} checks "
        f"({len(outcome.failed_checks)} failed)"
    ]
    for check in outcome.failed_checks:
        lines.append(f"  check failed [{check.severity}]: {check.asset} :: {check.name}")
    return lines


def dbt_op_config(job_run_config: dict | None, full_refresh: bool) -> dict:
    """The dbt op's config for a run: the job's own default (batch_refresh_full: `checks: all`, every dbt
    test over every row) with this call's `full_refresh` (run config given at launch replaces the job's)."""
    defaults = ((job_run_config or {}).get("ops") or {}).get("ecom_dbt", {}).get("config", {})
    return {**defaults, "full_refresh": full_refresh}


def run_batch(
    full_refresh: bool = False,
    settings: Settings | None = None,
    log_level: str = "WARNING",
    job_name: str = "batch_refresh",
) -> BatchOutcome:
    """Execute a job (default batch_refresh) in-process against the instance at DAGSTER_HOME.

    `batch_refresh` without `full_refresh` is the increment: it builds the dbt assets downstream of the
    sources changed since the last build, as the sensor's runs do (orchestration/defs/dbt/changes.py), and
    launches nothing when none changed. `log_level` filters Dagster's console log here; the run's full event
    log is in the instance either way.
    """
    for key, value in dagster_env(settings).items():
        os.environ.setdefault(key, value)

    import dagster as dg

    from orchestration.definitions import defs

    job = defs.resolve_job_def(job_name)
    run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if job.graph.has_node_named("ecom_dbt"):
        run_config["ops"] = {"ecom_dbt": {"config": dbt_op_config(job.run_config, full_refresh)}}
    started = time.monotonic()
    if job_name == "batch_refresh" and not full_refresh:
        from orchestration.defs.dbt.automation import increment_checks, pending_selection
        from orchestration.resources import PostgresResource

        pg = (settings or get_settings()).postgres
        postgres = PostgresResource(host=pg.host, port=pg.port, user=pg.user, password=pg.password, db=pg.db)
        selection = pending_selection(postgres)
        if not selection:
            return BatchOutcome(
                run_id="", success=True, seconds=time.monotonic() - started, nothing_changed=True
            )
        # the dbt tests of the selection only (a subset by assets alone would take the GX suites too)
        job = job.get_subset(asset_selection=selection, asset_check_selection=increment_checks(selection))
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config=run_config,
            raise_on_error=False,
            tags={"trigger": "ecom batch", "full_refresh": str(full_refresh).lower()},
        )
    materialized = sorted(
        {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
    )
    checks = [
        CheckOutcome(
            asset=ev.asset_key.to_user_string(),
            name=ev.check_name,
            passed=ev.passed,
            severity=ev.severity.value,
        )
        for ev in result.get_asset_check_evaluations()
    ]
    return BatchOutcome(
        run_id=result.run_id,
        success=result.success,
        seconds=time.monotonic() - started,
        materialized=materialized,
        checks=checks,
    )
