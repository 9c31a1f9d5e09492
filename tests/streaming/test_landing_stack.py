"""The landing side against the real stack: the new-landings sensor (skips below its threshold, requests a
run at it) and the observations of the Kafka topics and the master / speed tables."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from kernel import db
from kernel.settings import get_settings
from orchestration.defs.dbt.assets import ecom_dbt_assets
from orchestration.defs.dbt.automation import new_landings_sensor
from orchestration.resources import resources_from_settings
from orchestration.synthetic import SyntheticSpec, insert_transactions

pytestmark = pytest.mark.stack


def test_sensor_counts_rows_landed_after_its_cursor(stack, monkeypatch) -> None:
    with db.connect() as conn:
        before = conn.execute("SELECT coalesce(max(landed_seq), 0) FROM master.transactions").fetchone()[0]
        tag = uuid.uuid4().hex[:8]
        insert_transactions(
            conn, SyntheticSpec(prefix=f"sn{tag}-", topic=f"fixture-{tag}", scored=False), 0, 29
        )
    postgres = resources_from_settings(get_settings())["postgres"]

    monkeypatch.setenv("ECOM_BATCH_SENSOR_MIN_NEW_ROWS", "1000000000")
    get_settings.cache_clear()
    try:
        skipped = new_landings_sensor(
            dg.build_sensor_context(cursor=str(before), resources={"postgres": postgres})
        )
        monkeypatch.setenv("ECOM_BATCH_SENSOR_MIN_NEW_ROWS", "30")
        get_settings.cache_clear()
        context = dg.build_sensor_context(cursor=str(before), resources={"postgres": postgres})
        requested = new_landings_sensor(context)
    finally:
        get_settings.cache_clear()
    assert isinstance(skipped, dg.SkipReason)
    assert isinstance(requested, dg.RunRequest)
    assert int(context.cursor) >= before + 30
    assert requested.run_key == f"landed_seq_{context.cursor}"
    # the run builds what the new rows feed, with the dbt tests of it and no other check
    selected = set(requested.asset_selection)
    assert {dg.AssetKey(["marts", "fct_transactions"]), dg.AssetKey(["serving", "transactions"])} <= selected
    checks = set(requested.asset_check_keys)
    assert checks == {key for key in ecom_dbt_assets.check_keys if key.asset_key in selected}


def test_observations_report_high_water_marks(stack) -> None:
    from orchestration.definitions import defs

    with db.connect() as conn:
        max_seq = conn.execute("SELECT coalesce(max(landed_seq), 0) FROM master.transactions").fetchone()[0]
    # other domains may attach blocking checks to these assets; the observations are what is checked here
    result = defs.resolve_job_def("observe_landing").execute_in_process(raise_on_error=False)
    observed = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            obs = event.event_specific_data.asset_observation
            observed[obs.asset_key.to_user_string()] = obs
    assert set(observed) >= {"kafka/transactions", "master/transactions", "speed/scored_transactions"}
    master = observed["master/transactions"]
    assert int(master.tags["dagster/data_version"]) >= max_seq
    assert master.metadata["dagster/row_count"].value > 0
    assert observed["kafka/transactions"].metadata["partitions"].value == get_settings().kafka.partitions
