"""Customer analytics domain: RFM, cohorts, lifetime value and recommendation tables (schema `analytics`)
downstream of the marts, with their asset checks and a job that refreshes them all."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.analytics.assets import ASSETS, AnalyticsSource
from orchestration.defs.analytics.checks import CHECKS

analytics_job = dg.define_asset_job(
    "analytics_refresh",
    selection=dg.AssetSelection.groups("analytics"),
    description="Refresh RFM segments, cohorts, lifetime value and recommendations from the marts.",
)

# daily, after the night's batch refresh: the models are fitted on whole histories, hourly would only burn CPU
analytics_schedule = dg.ScheduleDefinition(
    job=analytics_job, cron_schedule="15 3 * * *", execution_timezone="UTC"
)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[analytics_job],
    schedules=[analytics_schedule],
    resources={"analytics_source": AnalyticsSource()},
)
