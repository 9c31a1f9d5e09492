"""ML domain: the fraud model's retrain -> gate -> promotion, as Dagster assets with a blocking check."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ml.assets import ASSETS, CHALLENGER, CHAMPION, CHAMPION_EVALUATION

fraud_retrain_job = dg.define_asset_job(
    "fraud_model_retrain",
    selection=dg.AssetSelection.assets(CHALLENGER, CHAMPION, CHAMPION_EVALUATION),
    description="Retrain the fraud model on the batch layer, gate it against the champion, promote if better, "
    "then report the new champion's figures on a recent period (offline and as the stream stored them).",
    tags={"layer": "ml"},
)

fraud_retrain_schedule = dg.ScheduleDefinition(
    name="fraud_model_retrain_daily",
    job=fraud_retrain_job,
    cron_schedule="30 3 * * *",
    description="Daily 03:30: retrain on the rolling window of the master dataset.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[fraud_retrain_job],
    schedules=[fraud_retrain_schedule],
)
