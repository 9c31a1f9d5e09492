"""When the batch layer refreshes: an hourly schedule, and a sensor on newly landed rows."""

from __future__ import annotations

import dagster as dg

from kernel.settings import get_settings
from orchestration.defs.dbt.assets import dbt_asset_deps, ecom_dbt_assets, manifest_path
from orchestration.defs.dbt.changes import increment_selection, project_mark, read_marks, recorded_marks
from orchestration.defs.dbt.project import dbt_target_db, ecom_dbt_project
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
    "their dbt tests, the growing models' tests on the slice this build adds (op config `checks`). What the "
    "sensor and `ecom batch` run, on the assets downstream of the sources changed since the last build "
    "(launched from the UI: what you select). The Great Expectations suites run in `batch_refresh_full`.",
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


def pending_selection(postgres: PostgresResource) -> set[dg.AssetKey]:
    """The dbt assets an increment builds now: downstream of the sources changed since the last build that
    covered them (orchestration/defs/dbt/changes.py); every one on a database never built."""
    deps = dbt_asset_deps()
    with postgres.connect(autocommit=True, db=dbt_target_db(postgres)) as conn:
        current = read_marks(conn, deps, project_mark(manifest_path(), ecom_dbt_project().project_dir))
        return increment_selection(current, recorded_marks(conn), deps)


def increment_checks(selection: set[dg.AssetKey]) -> set[dg.AssetCheckKey]:
    """The dbt tests of the selected assets. Given explicitly: a run subset to some assets would otherwise
    take every check attached to them, the quality domain's Great Expectations suites too, which this job
    leaves out (DBT_BUILD above)."""
    return {key for key in ecom_dbt_assets.check_keys if key.asset_key in selection}


@dg.sensor(
    name="new_landings_sensor",
    job=batch_refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests a batch refresh once ECOM_BATCH_SENSOR_MIN_NEW_ROWS new rows have landed in "
    "master.transactions since the last request (cursor: landed_seq); the run builds the dbt assets "
    "downstream of the sources changed since the last build (ops.batch_source_marks), with their checks.",
)
def new_landings_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    cursor_seq = int(context.cursor or 0)
    threshold = get_settings().dbt.sensor_min_new_rows
    new_rows, max_seq = postgres.fetch_one(NEW_ROWS_SQL, (cursor_seq, cursor_seq))
    run, next_cursor = refresh_decision(cursor_seq, int(new_rows), int(max_seq), threshold)
    if not run:
        return dg.SkipReason(f"{new_rows} new rows since landed_seq {cursor_seq} (< {threshold})")
    selection = pending_selection(postgres)
    if not selection:  # a build already took these rows in (one launched by hand since the last tick)
        context.update_cursor(str(next_cursor))
        return dg.SkipReason(f"landed_seq {next_cursor}: no source changed since the last build")
    context.update_cursor(str(next_cursor))
    return dg.RunRequest(
        run_key=f"landed_seq_{next_cursor}",
        asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
        asset_check_keys=sorted(increment_checks(selection), key=lambda k: k.to_user_string()),
        tags={"trigger": "new_landings"},
    )
