"""When the batch layer refreshes: an hourly schedule, and a sensor on newly landed rows."""

from __future__ import annotations

import dagster as dg

from kernel.settings import get_settings
from orchestration.defs.dbt.assets import ecom_dbt_assets
from orchestration.resources import PostgresResource

batch_refresh_job = dg.define_asset_job(
    "batch_refresh",
    selection=dg.AssetSelection.assets(ecom_dbt_assets),
    description="dbt build of the batch and serving layers (staging -> marts -> serving), every dbt test.",
    tags={"layer": "batch"},
)

batch_refresh_schedule = dg.ScheduleDefinition(
    name="batch_refresh_schedule",
    job=batch_refresh_job,
    cron_schedule=get_settings().dbt.refresh_cron,
    # the full suite: every dbt test over every row (other runs test the growing models' new slice only)
    run_config={"ops": {"ecom_dbt": {"config": {"checks": "all"}}}},
    description="Periodic batch refresh (cron from ECOM_BATCH_REFRESH_CRON) with every dbt test over every row.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

NEW_ROWS_SQL = "SELECT count(*), coalesce(max(landed_seq), %s) FROM master.transactions WHERE landed_seq > %s"


def refresh_decision(cursor_seq: int, new_rows: int, max_seq: int, threshold: int) -> tuple[bool, int]:
    """(request a run?, next cursor). The cursor only advances when a run is requested, so rows keep
    accumulating across ticks until there are enough of them."""
    if new_rows >= threshold:
        return True, max_seq
    return False, cursor_seq


@dg.sensor(
    name="new_landings_sensor",
    job=batch_refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests a batch refresh once ECOM_BATCH_SENSOR_MIN_NEW_ROWS new rows have landed in "
    "master.transactions since the last request (cursor: landed_seq).",
)
def new_landings_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    cursor_seq = int(context.cursor or 0)
    threshold = get_settings().dbt.sensor_min_new_rows
    new_rows, max_seq = postgres.fetch_one(NEW_ROWS_SQL, (cursor_seq, cursor_seq))
    run, next_cursor = refresh_decision(cursor_seq, int(new_rows), int(max_seq), threshold)
    if not run:
        return dg.SkipReason(f"{new_rows} new rows since landed_seq {cursor_seq} (< {threshold})")
    context.update_cursor(str(next_cursor))
    return dg.RunRequest(run_key=f"landed_seq_{next_cursor}", tags={"trigger": "new_landings"})
