"""Increments of the batch layer on real dbt + Postgres: what incremental builds leave in the star equals what
one full build over the same master dataset gives, row for row, also when rows arrive late and files are
replayed; the checks of the growing models read only the new slice, and all rows with ECOM_DBT_CHECKS=all.

The story, in a scratch database (the shared marts are not touched):
  build 1 (first build) over the shop's first rows;
  rows land: the next rows of the history, a late-arriving event (event time a month before anything built,
  on a terminal the reference data does not know, so its inferred merchant must move to this earlier
  checkout), and a row whose landing transaction stays open across build 2 (a late commit: its landed_seq
  is below the watermark build 2 records);
  build 2; the late commit lands; the first rows are replayed (landed again through the landing's write
  path); build 3; build 4 (nothing new);
  snapshot of every mart without its build stamps, `dbt build --full-refresh`, snapshot again: equal.
The builds are increments as `ecom batch` and the sensor run them: Dagster's `batch_refresh` on the dbt
assets downstream of the sources changed since the last build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from kernel.db import connect
from kernel.settings import Settings, service_env
from orchestration.synthetic import SyntheticSpec, insert_reference, insert_transactions

pytestmark = [pytest.mark.stack, pytest.mark.slow]

FIRST_ROWS, SECOND_ROWS, TOTAL = 2_000, 3_000, 3_400
SPEC = SyntheticSpec(
    prefix="inc-",
    topic="fixture-inc",
    n_customers=200,
    n_merchants=16,
    n_products=150,
    start_time=datetime(2021, 5, 3, tzinfo=UTC),  # in the past: nothing depends on the wall clock
    span=timedelta(days=20),
    total_rows=TOTAL,
)
# the marts and the columns that identify a row; the build stamps (when a row was written) are left out
MARTS = {
    "fct_transactions": "transaction_id",
    "fct_order_lines": "order_line_id",
    "fct_chargebacks": "transaction_id",
    "dim_customer": "customer_sk",
    "dim_merchant": "merchant_id",
    "dim_terminal": "terminal_id",
    "dim_product": "product_id",
    "dim_device": "device_id",
    "dim_date": "date_key",
    "customer_baselines": "customer_id",
}
STAMPS = {"batch_loaded_at", "refreshed_at", "computed_at"}

# a copy of a landed row under a new id: `{changes}` replaces columns, the Kafka offset moves out of the way
COPY_ROW_SQL = """
INSERT INTO master.transactions (transaction_id, schema_version, customer_id, merchant_id, terminal_id,
    event_time, currency, amount, payment_method, channel, device_id, device_type, ip_address, ip_country,
    ip_city, ip_lat, ip_lon, line_items, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp)
SELECT %(new_id)s, schema_version, customer_id, %(merchant_id)s, %(terminal_id)s, event_time - %(earlier)s,
       currency, amount, payment_method, channel, device_id, device_type, ip_address, ip_country, ip_city,
       ip_lat, ip_lon, line_items, kafka_topic, kafka_partition, kafka_offset + %(offset_shift)s,
       kafka_timestamp
FROM master.transactions WHERE transaction_id = %(source_id)s
"""


def _dbt(settings: Settings, *args: str, checks: str = "new") -> subprocess.CompletedProcess:
    target = f"target/test-increments-{settings.postgres.db}"
    env = {**os.environ, **service_env(settings)}
    env.pop("ECOM_DBT_CHECKS", None)
    if checks == "all":
        env["ECOM_DBT_CHECKS"] = "all"
    cmd = [
        str(settings.venv_bin / "dbt"),
        *args,
        "--project-dir",
        str(settings.dbt.project_dir),
        "--profiles-dir",
        str(settings.dbt.profiles_dir),
        "--target-path",
        target,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def _build(settings: Settings, *extra: str) -> None:
    out = _dbt(settings, "build", "--select", "+tag:marts", *extra)
    assert out.returncode == 0, out.stdout[-4000:]


def _increment(settings: Settings):
    """The increment as `ecom batch` and the sensor run it: Dagster's batch_refresh on the dbt assets
    downstream of the sources changed since the last build (orchestration/defs/dbt/changes.py)."""
    from orchestration.batch import run_batch

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_PG_DB", settings.postgres.db)  # dbt and the build lock follow it
        outcome = run_batch(settings=settings)
    assert outcome.ok, (outcome.run_id, outcome.failed_checks)
    return outcome


def _marts(settings: Settings) -> dict[str, dict]:
    """Every mart as {key: row as JSON without build stamps} (JSON: psycopg cannot load -infinity)."""
    stamps = " - ".join(f"'{c}'" for c in STAMPS)
    snapshot = {}
    with connect(settings) as conn:
        for table, key in MARTS.items():
            rows = conn.execute(f"SELECT t.{key}, to_jsonb(t) - {stamps} FROM marts.{table} AS t").fetchall()
            snapshot[table] = dict(rows)
            assert len(snapshot[table]) == len(rows), f"{table}: duplicate {key}"
    return snapshot


def _copy_row(
    conn, source_id: str, new_id: str, merchant_id: str, terminal_id: str, earlier: timedelta
) -> None:
    conn.execute(
        COPY_ROW_SQL,
        {
            "new_id": new_id,
            "source_id": source_id,
            "merchant_id": merchant_id,
            "terminal_id": terminal_id,
            "earlier": earlier,
            "offset_shift": 1_000_000 + len(new_id),
        },
    )


@pytest.fixture(scope="module")
def story(settings):
    from orchestration.scratch import scratch_database

    name = f"ecom_increments_{uuid.uuid4().hex[:8]}"
    try:
        with scratch_database(name, settings) as scratch:
            yield _play(scratch)
    finally:
        shutil.rmtree(settings.dbt.project_dir / f"target/test-increments-{name}", ignore_errors=True)


def _play(scratch: Settings) -> dict:
    with connect(scratch) as conn:
        insert_reference(conn, SPEC, every=2)  # odd ids unknown: inferred members
        insert_transactions(conn, SPEC, 0, FIRST_ROWS - 1)
    builds = [_increment(scratch)]

    with connect(scratch) as conn:
        first_event = conn.execute("SELECT min(event_time) FROM master.transactions").fetchone()[0]
        inferred_terminal, its_merchant = conn.execute(
            "SELECT terminal_id, merchant_id FROM marts.dim_terminal WHERE is_inferred ORDER BY terminal_id LIMIT 1"
        ).fetchone()
        other_merchant, source_id = conn.execute(
            "SELECT merchant_id, transaction_id FROM master.transactions WHERE merchant_id <> %s "
            "ORDER BY landed_seq DESC LIMIT 1",
            (its_merchant,),
        ).fetchone()
        insert_transactions(conn, SPEC, FIRST_ROWS, SECOND_ROWS - 1)
        # late-arriving: event time a month before anything built, on a terminal only the facts know
        _copy_row(conn, source_id, "inc-late-event", other_merchant, inferred_terminal, timedelta(days=30))
        # reference data moves too: a known customer gets a new version (the snapshot closes the old one),
        # a customer only the facts knew becomes known (its inferred member stops being current)
        moved, unknown = conn.execute(
            "SELECT (SELECT min(customer_id) FROM reference.customers), "
            "(SELECT min(customer_id) FROM marts.dim_customer WHERE is_inferred)"
        ).fetchone()
        conn.execute(
            "UPDATE reference.customers SET home_city = 'Elsewhere', updated_at = updated_at + interval '1 day' "
            "WHERE customer_id = %s",
            (moved,),
        )
        conn.execute(
            "INSERT INTO reference.customers (customer_id, first_name, signup_at, home_country, home_city, "
            "home_lat, home_lon, currency, value_tier, preferred_payment, preferred_channel, n_devices, "
            "favourite_category) SELECT %s, first_name, signup_at, home_country, home_city, home_lat, home_lon, "
            "currency, value_tier, preferred_payment, preferred_channel, n_devices, favourite_category "
            "FROM reference.customers WHERE customer_id = %s",
            (unknown, moved),
        )
        conn.commit()

    # a late commit: the landing draws landed_seq now and commits after build 2 has recorded a higher one
    late = connect(scratch)
    _copy_row(late, source_id, "inc-late-commit", other_merchant, "inc-T-late-commit", timedelta(days=1))
    with connect(scratch) as conn:
        insert_transactions(conn, SPEC, SECOND_ROWS, TOTAL - 1)
    builds.append(_increment(scratch))
    late.commit()
    late.close()

    with connect(scratch) as conn:
        replayed = insert_transactions(conn, SPEC, 0, TOTAL - 1)  # the whole file again
    builds.append(_increment(scratch))
    builds.append(_increment(scratch))  # nothing landed since: nothing to build
    incremental = _marts(scratch)

    with connect(scratch) as conn:
        master_ids = {r[0] for r in conn.execute("SELECT transaction_id FROM master.transactions")}
        watermarks = [
            r[0] for r in conn.execute("SELECT watermark_seq FROM marts.batch_watermark ORDER BY built_at")
        ]
        late_seq = conn.execute(
            "SELECT landed_seq FROM master.transactions WHERE transaction_id = 'inc-late-commit'"
        ).fetchone()[0]
        late_date = conn.execute(
            "SELECT date_key FROM marts.fct_transactions WHERE transaction_id = 'inc-late-event'"
        ).fetchone()[0]

    _build(scratch, "--full-refresh")
    full = _marts(scratch)
    return {
        "scratch": scratch,
        "builds": builds,
        "incremental": incremental,
        "full": full,
        "master_ids": master_ids,
        "replayed": replayed,
        "watermarks": watermarks,
        "late_seq": late_seq,
        "first_event": first_event,
        "late_date": late_date,
        "inferred_terminal": inferred_terminal,
        "other_merchant": other_merchant,
        "moved_customer": moved,
        "known_customer": unknown,
    }


def test_an_increment_builds_what_its_changed_sources_feed(story) -> None:
    """Build 1 (nothing recorded yet) builds every dbt asset; build 2 (transactions and reference customers
    changed) the snapshot's lineage too; build 3 (a late commit and a replay: only master.transactions moved)
    the transactions' lineage without the reference side; build 4 (nothing moved) launches no run. Each
    run carries the dbt tests of what it builds and no other check (not the GX suites on the marts)."""
    from orchestration.defs.dbt.assets import ecom_dbt_assets

    first, second, third, fourth = story["builds"]
    every = {key.to_user_string() for key in ecom_dbt_assets.keys}
    assert set(first.materialized) == every
    snapshot, facts = "snapshots/snap_reference__customers", "marts/fct_transactions"
    assert {snapshot, facts, "marts/dim_customer", "serving/transactions"} <= set(second.materialized)
    assert facts in third.materialized and "serving/transactions" in third.materialized
    assert snapshot not in third.materialized and "staging/stg_reference__products" not in third.materialized
    assert "marts/dim_channel" not in third.materialized  # static: changes only with the project
    dbt_checks = {(key.asset_key.to_user_string(), key.name) for key in ecom_dbt_assets.check_keys}
    for build in (first, second, third):
        ran = {(check.asset, check.name) for check in build.checks}
        assert ran <= dbt_checks, ran - dbt_checks
        assert ran == {c for c in dbt_checks if c[0] in build.materialized}
    assert fourth.nothing_changed and not fourth.run_id


def test_a_database_without_the_marks_table_gets_a_one_line_fix(story, monkeypatch) -> None:
    """A database the kernel's schema was not applied to since the marks table came: `ecom batch` and the
    sensor say what to run instead of a traceback."""
    from kernel.errors import EcomError
    from orchestration.defs.dbt.automation import pending_selection
    from orchestration.resources import PostgresResource

    scratch = story["scratch"]
    pg = scratch.postgres
    monkeypatch.setenv("ECOM_PG_DB", pg.db)
    postgres = PostgresResource(host=pg.host, port=pg.port, user=pg.user, password=pg.password, db=pg.db)
    with connect(scratch) as conn:
        conn.execute("ALTER TABLE ops.batch_source_marks RENAME TO batch_source_marks_away")
        conn.commit()
    try:
        with pytest.raises(EcomError, match=r"batch_source_marks.*run `ecom up`"):
            pending_selection(postgres)
    finally:
        with connect(scratch) as conn:
            conn.execute("ALTER TABLE ops.batch_source_marks_away RENAME TO batch_source_marks")
            conn.commit()
    assert pending_selection(postgres) == set()  # the story's last build left nothing to build


def test_every_landed_row_is_in_the_fact_once(story) -> None:
    facts = story["incremental"]["fct_transactions"]
    assert story["replayed"] == 0  # the replayed file landed nothing new
    assert set(facts) == story["master_ids"]  # _marts refuses duplicates
    assert len(facts) == TOTAL + 2
    # the late commit's landed_seq is below the watermark of the build that ran while it was open
    assert len(story["watermarks"]) == 3 and story["late_seq"] < story["watermarks"][1]
    assert "inc-late-event" in facts and "inc-late-commit" in facts
    lines = story["incremental"]["fct_order_lines"]
    assert {k.rsplit(":", 1)[0] for k in lines} == story["master_ids"]


def test_the_late_event_moved_the_inferred_terminal_and_the_calendar(story) -> None:
    inc = story["incremental"]
    terminal = inc["dim_terminal"][story["inferred_terminal"]]
    assert terminal["merchant_id"] == story["other_merchant"]  # of its earliest checkout, the late one
    assert "inc-T-late-commit" in inc["dim_terminal"]
    assert story["late_date"] < int(story["first_event"].astimezone(UTC).strftime("%Y%m%d"))
    assert story["late_date"] in inc["dim_date"]


def test_the_customer_dimension_took_the_new_version_and_the_newly_known_customer(story) -> None:
    rows = story["incremental"]["dim_customer"].values()
    moved = [r for r in rows if r["customer_id"] == story["moved_customer"]]
    assert len(moved) == 2 and [r["home_city"] for r in moved if r["is_current"]] == ["Elsewhere"]
    known = [r for r in rows if r["customer_id"] == story["known_customer"]]
    # its inferred member is gone: the checkouts built while it was unknown now point at its version
    assert [(r["is_inferred"], r["is_current"]) for r in known] == [(False, True)]
    facts = [
        f
        for f in story["incremental"]["fct_transactions"].values()
        if f["customer_id"] == known[0]["customer_id"]
    ]
    assert facts and {f["customer_sk"] for f in facts} == {known[0]["customer_sk"]}


@pytest.mark.parametrize("table", list(MARTS))
def test_increments_equal_a_full_build(story, table) -> None:
    inc, full = story["incremental"][table], story["full"][table]
    assert set(inc) == set(full), f"{table}: keys differ: {sorted(set(inc) ^ set(full))[:5]}"
    differing = [k for k in full if inc[k] != full[k]]
    assert not differing, (
        f"{table}: {len(differing)} rows differ, e.g. {inc[differing[0]]} != {full[differing[0]]}"
    )


def test_baselines_built_before_the_walk_state_existed_upgrade_in_place(story) -> None:
    """A deployed customer_baselines from before its walk_* state columns: the next increment does not fail
    (the SQL reads no state column the table lacks), adds the columns, and a customer of its slice gets
    the full build's row (walked again: there is no state to walk on from)."""
    scratch = story["scratch"]
    with connect(scratch) as conn:
        state = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
                "AND table_name = 'customer_baselines' AND column_name LIKE 'walk%%'"
            )
        ]
        assert len(state) == 7
        conn.execute(f"ALTER TABLE marts.customer_baselines {', '.join(f'DROP COLUMN {c}' for c in state)}")
        # a customer's latest checkout enters the next slice again, as if it had just landed (its stamp is
        # put back afterwards: the order lines would take a restamped checkout's lines as new)
        tx_id, customer, stamp = conn.execute(
            "SELECT transaction_id, customer_id, batch_loaded_at FROM marts.fct_transactions "
            "ORDER BY transaction_id DESC LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE marts.fct_transactions SET batch_loaded_at = now() WHERE transaction_id = %s", (tx_id,)
        )
        conn.commit()
    try:
        out = _dbt(scratch, "build", "--select", "customer_baselines", "--exclude-resource-type", "test")
    finally:
        with connect(scratch) as conn:
            conn.execute(
                "UPDATE marts.fct_transactions SET batch_loaded_at = %s WHERE transaction_id = %s",
                (stamp, tx_id),
            )
            conn.commit()
    assert out.returncode == 0, out.stdout[-3000:]
    assert _marts(scratch)["customer_baselines"][customer] == story["full"]["customer_baselines"][customer]


def test_checks_read_the_new_slice_and_all_rows_on_request(story) -> None:
    """A bad value in an old row is outside the slice (the default run passes, it was checked when it was
    new); the full suite (ECOM_DBT_CHECKS=all, the scheduled run) finds it; a bad value in the latest slice
    fails the default run too."""
    scratch = story["scratch"]
    select = ["test", "--select", "fct_transactions,test_name:accepted_values"]
    with connect(scratch) as conn:
        conn.execute(
            "UPDATE marts.fct_transactions SET payment_method = 'barter', batch_loaded_at = "
            "(SELECT min(batch_loaded_at) FROM marts.fct_transactions) - interval '1 hour' "
            "WHERE transaction_id = 'inc-late-event'"
        )
        conn.commit()
    assert _dbt(scratch, *select).returncode == 0
    assert _dbt(scratch, *select, checks="all").returncode != 0
    with connect(scratch) as conn:
        conn.execute(
            "UPDATE marts.fct_transactions SET payment_method = 'barter' WHERE transaction_id = "
            "(SELECT max(transaction_id) FROM marts.fct_transactions WHERE batch_loaded_at = "
            " (SELECT max(batch_loaded_at) FROM marts.fct_transactions))"
        )
        conn.commit()
    assert _dbt(scratch, *select).returncode != 0


@pytest.mark.parametrize(
    ("table", "key"),
    [("fct_transactions", "transaction_id"), ("fct_order_lines", "transaction_id, line_number")],
)
def test_the_facts_refuse_a_second_copy_of_an_old_row(story, table, key) -> None:
    """What lets the default run check uniqueness on the new slice only: a copy of a row built long ago
    (outside any slice) is refused by the fact's unique index. fct_order_lines' index is on (transaction_id,
    line_number), from which order_line_id is derived one-to-one."""
    import psycopg

    with connect(story["scratch"]) as conn:
        before = conn.execute(f"SELECT count(*) FROM marts.{table}").fetchone()[0]
        with pytest.raises(psycopg.errors.UniqueViolation, match=r"\(" + re.escape(key) + r"\)"):
            conn.execute(
                f"INSERT INTO marts.{table} SELECT * FROM marts.{table} "
                f"WHERE batch_loaded_at = (SELECT min(batch_loaded_at) FROM marts.{table}) LIMIT 1"
            )
        conn.rollback()
        assert conn.execute(f"SELECT count(*) FROM marts.{table}").fetchone()[0] == before


SPEED_KEYS_SQL = """
SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
WHERE c.conrelid IN ('speed.scored_transactions'::regclass, 'speed.fraud_alerts'::regclass)
  AND c.contype IN ('p', 'f') ORDER BY c.contype
"""


def test_checks_of_the_speed_scores_read_what_was_scored_since_the_last_build(story) -> None:
    """The speed table's primary key enforces what its dbt tests check, so they read only the rows scored
    since the previous build (less `speed_commit_lookback`). With the key dropped for the test: a duplicate
    scored long before that build passes the default run and fails the full suite; scored now, it fails the
    default run too."""
    scratch = story["scratch"]
    select = ["test", "--select", "stg_speed__scored_transactions,test_name:unique"]
    with connect(scratch) as conn:
        keys = conn.execute(SPEED_KEYS_SQL).fetchall()  # the foreign key first: it depends on the primary key
        for table, name, _ in keys:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        # a copy of a scored row (batch_id -1 marks it), committed two hours before the latest build
        conn.execute(
            "INSERT INTO speed.scored_transactions SELECT (jsonb_populate_record(NULL::speed.scored_transactions, "
            "to_jsonb(s) || jsonb_build_object('batch_id', -1, 'committed_at', "
            "(SELECT max(built_at) FROM marts.batch_watermark) - interval '2 hours'))).* "
            "FROM speed.scored_transactions AS s "
            "WHERE s.transaction_id = (SELECT min(transaction_id) FROM speed.scored_transactions)"
        )
        conn.commit()
    try:
        assert _dbt(scratch, *select).returncode == 0
        assert _dbt(scratch, *select, checks="all").returncode != 0
        with connect(scratch) as conn:
            conn.execute("UPDATE speed.scored_transactions SET committed_at = now() WHERE batch_id = -1")
            conn.commit()
        assert _dbt(scratch, *select).returncode != 0
    finally:
        with connect(scratch) as conn:
            conn.execute("DELETE FROM speed.scored_transactions WHERE batch_id = -1")
            for table, name, definition in reversed(keys):
                conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            conn.commit()


def _day(settings: Settings, date_key: int) -> tuple[dict, dict]:
    marts = _marts(settings)
    return tuple(
        {k: v for k, v in marts[t].items() if v["date_key"] == date_key}
        for t in ("fct_transactions", "fct_order_lines")
    )


def test_backfill_of_one_day_derives_it_again_idempotently(story, monkeypatch) -> None:
    """Dagster's partitioned job `backfill_facts_day` on a damaged day (rows lost, a value changed): the day's
    facts and lines are again what a full build gives; run again, nothing changes; the other days keep
    their rows."""
    import dagster as dg

    from orchestration.definitions import defs

    scratch = story["scratch"]
    monkeypatch.setenv("ECOM_PG_DB", scratch.postgres.db)  # dbt and the build lock follow it
    full_tx, full_lines = story["full"]["fct_transactions"], story["full"]["fct_order_lines"]
    busiest = max(
        {v["date_key"] for v in full_tx.values()},
        key=lambda d: sum(v["date_key"] == d for v in full_tx.values()),
    )
    want_tx = {k: v for k, v in full_tx.items() if v["date_key"] == busiest}
    want_lines = {k: v for k, v in full_lines.items() if v["date_key"] == busiest}
    with connect(scratch) as conn:
        lost = [
            r[0]
            for r in conn.execute(
                "DELETE FROM marts.fct_transactions WHERE transaction_id IN (SELECT transaction_id FROM "
                "marts.fct_transactions WHERE date_key = %s ORDER BY transaction_id LIMIT 5) RETURNING transaction_id",
                (busiest,),
            )
        ]
        conn.execute("DELETE FROM marts.fct_order_lines WHERE transaction_id = ANY(%s)", (lost,))
        conn.execute(
            "UPDATE marts.fct_transactions SET amount = amount + 1 WHERE transaction_id = "
            "(SELECT max(transaction_id) FROM marts.fct_transactions WHERE date_key = %s)",
            (busiest,),
        )
        conn.commit()
    assert len(lost) == 5
    others_before = {k for k in _marts(scratch)["fct_transactions"] if k not in want_tx}

    day = f"{str(busiest)[:4]}-{str(busiest)[4:6]}-{str(busiest)[6:]}"
    job = defs.resolve_job_def("backfill_facts_day")
    for attempt in (1, 2):
        result = job.execute_in_process(partition_key=day, instance=dg.DagsterInstance.ephemeral())
        assert result.success, f"backfill run {attempt} failed"
        got_tx, got_lines = _day(scratch, busiest)
        assert got_tx == want_tx, f"run {attempt}: {len(got_tx)} facts of {day}, want {len(want_tx)}"
        assert got_lines == want_lines, f"run {attempt}: order lines of {day} differ"
    facts = _marts(scratch)["fct_transactions"]
    assert {k for k in facts if k not in want_tx} == others_before
    assert set(facts) == story["master_ids"]
    materialized = result.asset_materializations_for_node("derive_event_day")
    assert materialized and materialized[0].metadata["transactions"].value == len(want_tx)
