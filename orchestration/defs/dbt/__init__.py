"""Batch and serving layers: the dbt star schema as Dagster assets, with its jobs, schedule and sensor, and the
facts' daily partitions (backfill of one event day)."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.dbt.assets import ecom_dbt_assets
from orchestration.defs.dbt.automation import (
    batch_refresh_full_job,
    batch_refresh_job,
    batch_refresh_schedule,
    new_landings_sensor,
)
from orchestration.defs.dbt.backfill import backfill_facts_day
from orchestration.defs.dbt.project import dbt_resource

defs = dg.Definitions(
    assets=[ecom_dbt_assets],
    jobs=[batch_refresh_job, batch_refresh_full_job, backfill_facts_day],
    schedules=[batch_refresh_schedule],
    sensors=[new_landings_sensor],
    resources={"dbt": dbt_resource()},
)
