"""The facts by event day: a daily-partitioned job over marts.fct_transactions, so one day can be derived again
from the master dataset (Dagster UI: job `backfill_facts_day`, Partitions tab: launch a run for a day or a
backfill of a range).

A job rather than a partitioned asset: the cross-domain `refresh_all` job selects every asset, and one
partitioned asset among them would make it a partitioned job. Running day D runs
`dbt build --select fct_transactions+ --vars {backfill_day: D}` under the build lock: the facts delete D's
rows and derive them again from master in the same transaction (dbt_project/macros/increments.sql), and
everything downstream takes the re-derived rows as its new slice (a changed --vars makes dbt parse the
project again: a backfill run pays that once).
Idempotent: a second run of the same day leaves the same rows. The day's counts are recorded as a
materialization of `marts/fct_transactions`.
"""

import json
from datetime import date, timedelta

import dagster as dg

# imported by name: Dagster validates the `context` annotation when the op is defined
from dagster import OpExecutionContext
from dagster_dbt import DbtCliResource

from orchestration.defs.dbt.assets import manifest_path
from orchestration.defs.dbt.project import build_lock, dbt_target_db, set_check_scope
from orchestration.resources import PostgresResource

# Days before the data simply hold nothing; the simulator's and the replayed histories start after it.
PARTITIONS_START = "2019-01-01"
FACTS_KEY = dg.AssetKey(["marts", "fct_transactions"])
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC", end_offset=1)

DAY_FIGURES_SQL = """
SELECT (SELECT count(*) FROM marts.fct_transactions WHERE event_time >= %(lo)s AND event_time < %(hi)s),
       (SELECT coalesce(sum(amount), 0) FROM marts.fct_transactions WHERE event_time >= %(lo)s AND event_time < %(hi)s),
       (SELECT count(*) FROM marts.fct_order_lines WHERE event_time >= %(lo)s AND event_time < %(hi)s),
       (SELECT count(*) FROM master.transactions WHERE event_time >= %(lo)s AND event_time < %(hi)s)
"""


def backfill_args(day: str) -> list[str]:
    """dbt's arguments for deriving one event day again (pure)."""
    date.fromisoformat(day)  # a partition key is a date; anything else is refused before dbt runs
    return ["build", "--select", "fct_transactions+", "--vars", json.dumps({"backfill_day": day})]


@dg.op(
    name="derive_event_day",
    description="dbt: derive the facts of the partition's UTC event day again from the master dataset.",
    tags={"kind": "dbt"},
)
def derive_event_day(context: OpExecutionContext, dbt: DbtCliResource, postgres: PostgresResource) -> None:
    day = context.partition_key
    set_check_scope("new")  # the tests of the facts read the re-derived day (their new slice)
    with build_lock(postgres):
        dbt.cli(backfill_args(day), manifest=manifest_path(), raise_on_error=True).wait()
    lo = date.fromisoformat(day)
    with postgres.connect(db=dbt_target_db(postgres)) as conn:
        n, amount, lines, master = conn.execute(
            DAY_FIGURES_SQL, {"lo": f"{lo}T00:00:00Z", "hi": f"{lo + timedelta(days=1)}T00:00:00Z"}
        ).fetchone()
    # recorded on the facts' asset (its history in the UI shows which day was derived again, and the counts)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=FACTS_KEY,
            description=f"event day {day} derived again (backfill_facts_day)",
            metadata={
                "backfill_day": day,
                "transactions": int(n),
                "amount": float(amount),
                "order_lines": int(lines),
                "master_transactions": int(master),
            },
        )
    )


@dg.job(
    name="backfill_facts_day",
    partitions_def=daily_partitions,
    description="The facts by UTC event day: a partition run (or a backfill of a range, from the job's "
    "Partitions tab) derives those days' transactions and order lines again from the master dataset, "
    "idempotently, and refreshes what depends on them.",
    tags={"layer": "batch"},
)
def backfill_facts_day():
    derive_event_day()
