"""The platform's inputs as assets: lineage reads generator -> Kafka -> master -> staging -> marts -> serving.

Nothing here is materialized by Dagster: the simulator produces to Kafka, the stream lands the master
dataset and writes the speed tables. They are external assets whose observations (row counts, high-water
marks, Kafka end offsets) give the asset graph data versions and feed the freshness checks.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import dagster as dg

from orchestration.resources import KafkaResource, PostgresResource

# While the shop is open, transactions land continuously: an hour without one is a warning, a day a failure.
LANDING_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=24), warn_window=timedelta(hours=1)
)

GENERATOR = dg.AssetKey(["generator", "shop_simulator"])
KAFKA_TRANSACTIONS = dg.AssetKey(["kafka", "transactions"])
KAFKA_CHARGEBACKS = dg.AssetKey(["kafka", "chargebacks"])
MASTER_TRANSACTIONS = dg.AssetKey(["master", "transactions"])
MASTER_CHARGEBACKS = dg.AssetKey(["master", "chargebacks"])
SPEED_SCORED = dg.AssetKey(["speed", "scored_transactions"])
SPEED_ALERTS = dg.AssetKey(["speed", "fraud_alerts"])
REFERENCE_TABLES = ("customers", "products", "merchants", "terminals")

# multi_observable_source_asset is marked beta; it is the documented way to observe several external tables
warnings.filterwarnings("ignore", message=".*multi_observable_source_asset.*", category=dg.BetaWarning)

generator_spec = dg.AssetSpec(
    GENERATOR,
    description="The shop simulator (events.simulator) or a replay of real histories: produces "
    "transaction and chargeback events to Kafka (`ecom generate`).",
    group_name="landing",
    kinds={"python"},
    owners=["team:events"],
)

kafka_specs = [
    dg.AssetSpec(
        KAFKA_TRANSACTIONS,
        deps=[GENERATOR],
        description="Kafka topic of transaction events (contract events/contract/transaction.v1.json), "
        "keyed by customer_id.",
        group_name="landing",
        kinds={"kafka"},
        owners=["team:events"],
    ),
    dg.AssetSpec(
        KAFKA_CHARGEBACKS,
        deps=[GENERATOR],
        description="Kafka topic of fraud labels (chargebacks) that arrive days after the transaction.",
        group_name="landing",
        kinds={"kafka"},
        owners=["team:events"],
    ),
]

postgres_specs = [
    dg.AssetSpec(
        MASTER_TRANSACTIONS,
        deps=[KAFKA_TRANSACTIONS],
        freshness_policy=LANDING_FRESHNESS,
        description="Immutable, append-only master dataset: every transaction exactly once, with its Kafka "
        "position and landing order (landed_seq).",
        group_name="landing",
        kinds={"postgres"},
        owners=["team:speed-layer"],
    ),
    dg.AssetSpec(
        MASTER_CHARGEBACKS,
        deps=[KAFKA_CHARGEBACKS],
        description="Append-only fraud labels (chargebacks) as they arrive.",
        group_name="landing",
        kinds={"postgres"},
        owners=["team:speed-layer"],
    ),
    dg.AssetSpec(
        SPEED_SCORED,
        deps=[KAFKA_TRANSACTIONS],
        freshness_policy=LANDING_FRESHNESS,
        description="Speed layer: every transaction scored by the Spark stream (fraud_score, model_version).",
        group_name="speed",
        kinds={"spark", "postgres"},
        owners=["team:speed-layer"],
    ),
    dg.AssetSpec(
        SPEED_ALERTS,
        deps=[SPEED_SCORED],
        description="Speed layer: transactions above the model's threshold, with reasons in words.",
        group_name="speed",
        kinds={"spark", "postgres"},
        owners=["team:speed-layer"],
    ),
    *[
        dg.AssetSpec(
            ["reference", name],
            description=f"Reference data: {name} (kernel/sql/010_reference.sql, loaded by the events room).",
            group_name="landing",
            kinds={"postgres"},
            owners=["team:events"],
        )
        for name in REFERENCE_TABLES
    ],
]

# What each observation reads: (row count, high-water mark) per table.
OBSERVE_SQL = {
    MASTER_TRANSACTIONS: (
        "SELECT count(*), coalesce(max(landed_seq), 0)::text, max(landed_at) FROM master.transactions"
    ),
    MASTER_CHARGEBACKS: "SELECT count(*), count(*)::text, max(landed_at) FROM master.chargebacks",
    SPEED_SCORED: "SELECT count(*), count(*)::text, max(committed_at) FROM speed.scored_transactions",
    SPEED_ALERTS: "SELECT count(*), count(*)::text, max(created_at) FROM speed.fraud_alerts",
}


@dg.multi_observable_source_asset(specs=postgres_specs[:4], name="observe_landing_tables", can_subset=True)
def observe_landing_tables(context, postgres: PostgresResource):
    """Row counts and high-water marks of the master and speed tables (data version = the mark)."""
    # in OBSERVE_SQL order, which is topological (alerts after scored transactions), as Dagster requires
    for key in [k for k in OBSERVE_SQL if k in context.selected_asset_keys]:
        count, mark, last_at = postgres.fetch_one(OBSERVE_SQL[key])
        metadata = {"dagster/row_count": int(count)}
        if last_at is not None:
            metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(last_at)
        yield dg.ObserveResult(asset_key=key, data_version=dg.DataVersion(str(mark)), metadata=metadata)


@dg.multi_observable_source_asset(specs=kafka_specs, name="observe_kafka_topics", can_subset=True)
def observe_kafka_topics(context, kafka: KafkaResource):
    """Sum of end offsets per topic (data version = total messages ever produced)."""
    topics = {KAFKA_TRANSACTIONS: kafka.topic_transactions, KAFKA_CHARGEBACKS: kafka.topic_labels}
    selected = [key for key in topics if key in context.selected_asset_keys]
    offsets = kafka.end_offsets([topics[key] for key in selected])
    for key in selected:
        total, partitions = offsets[topics[key]]
        yield dg.ObserveResult(
            asset_key=key,
            data_version=dg.DataVersion(str(total)),
            metadata={"end_offsets_total": total, "partitions": partitions, "topic": topics[key]},
        )


observe_landing_job = dg.define_asset_job(
    "observe_landing",
    selection=dg.AssetSelection.assets(observe_landing_tables, observe_kafka_topics),
    description="Observe the Kafka topics and the master/speed tables (counts, high-water marks, last update).",
)

observe_landing_schedule = dg.ScheduleDefinition(
    name="observe_landing_schedule",
    job=observe_landing_job,
    cron_schedule="*/5 * * * *",
    description="Observations feed the freshness policies of the landing and speed tables.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    assets=[generator_spec, *postgres_specs[4:], observe_landing_tables, observe_kafka_topics],
    jobs=[observe_landing_job],
    schedules=[observe_landing_schedule],
)
