"""When the batch layer refreshes: an hourly schedule, and a sensor on newly landed rows."""

from __future__ import annotations

import dagster as dg

from kernel.settings import get_settings
from orchestration.defs.dbt.assets import ecom_dbt_assets
from orchestration.resources import PostgresResource

# The dbt models with the tests dbt runs in the same build, not the checks other domains attach to them
# (the Great Expectations suites on the marts): the whole dbt build is one op, so a check attached to one
# of its assets runs after every model of the build and cannot stop any of them; in this job it would gate
# nothing and cost seconds per suite on every increment. They run in `batch_refresh_full` (scheduled),
# `quality_checks` and `refresh_all`, where they do gate what is downstream (analytics, the model).
DBT_BUILD = dg.AssetSelection.assets(ecom_dbt_assets).without_checks() | dg.AssetSelection.checks(
    ecom_dbt_assets
)

batch_refresh_job = dg.define_asset_job(
    "batch_refresh",
    selection=DBT_BUILD,
    description="The increment: dbt build of the batch and serving layers (staging -> marts -> serving) with "
    "every dbt test, the growing models' tests on the slice this build adds (op config `checks`). What the "
    "sensor and `ecom batch` run. The Great Expectations suites run in `batch_refresh_full`.",
    tags={"layer": "batch"},
)

FULL_CHECKS_CONFIG = {"ops": {"ecom_dbt": {"config": {"checks": "all"}}}}

batch_refresh_full_job = dg.define_asset_job(
    "batch_refresh_full",
    selection=dg.AssetSelection.assets(ecom_dbt_assets),
    config=FULL_CHECKS_CONFIG,
    description="The scheduled refresh: dbt build with every dbt test over every row, then every check "
    "attached to these assets (the Great Expectations suites on the marts).",
    tags={"layer": "batch"},
)

batch_refresh_schedule = dg.ScheduleDefinition(
    name="batch_refresh_schedule",
    job=batch_refresh_full_job,
    cron_schedule=get_settings().dbt.refresh_cron,
    # the full suite: every dbt test over every row and the GX suites (the sensor's runs test the new slice)
    run_config=FULL_CHECKS_CONFIG,
    description="Periodic full-suite refresh (cron from ECOM_BATCH_REFRESH_CRON): every dbt test over every "
    "row and the Great Expectations suites on the marts.",
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
