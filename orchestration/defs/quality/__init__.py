"""Quality domain: Great Expectations suites as blocking asset checks, and a job that runs them all.

Checks are attached to ["master","transactions"], ["speed","scored_transactions"], ["marts",
"fct_transactions"], one per dimension the fact references (["marts","dim_customer"], ...) and
["analytics","rfm_customers"] / ["analytics","customer_ltv"]. A job that materializes an asset runs
that asset's checks; to gate the dbt build on the *inputs* (master, speed are external assets), select
`GATE_INPUTS` alongside the dbt assets.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.quality.checks import build_quality_checks
from orchestration.defs.quality.resources import QualityResource

quality_checks = build_quality_checks()

# the checks of the batch layer's inputs: union them into a job's selection to gate it on input quality
GATE_INPUTS = dg.AssetSelection.checks_for_assets(
    dg.AssetKey(["master", "transactions"]), dg.AssetKey(["speed", "scored_transactions"])
)

quality_checks_job = dg.define_asset_job(
    "quality_checks",
    selection=dg.AssetSelection.checks(*quality_checks),
    description="Run every Great Expectations suite (all quality checks) without materializing anything.",
    tags={"layer": "quality"},
)

quality_checks_schedule = dg.ScheduleDefinition(
    name="quality_checks_schedule",
    job=quality_checks_job,
    cron_schedule="*/30 * * * *",
    description="Every 30 minutes: run all quality checks (scores over time for the dashboard).",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    asset_checks=quality_checks,
    jobs=[quality_checks_job],
    schedules=[quality_checks_schedule],
    resources={"quality": QualityResource()},
)
