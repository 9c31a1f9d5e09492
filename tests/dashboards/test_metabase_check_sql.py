"""check-sql against the real Postgres: filter values are bound (an injection through a dashboard filter does
nothing), failures are reported per card, and every card of every spec runs on a database the pipeline filled."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from dashboards.check_sql import check_card, check_specs
from dashboards.spec import parse_card

INJECTIONS = [
    "x' OR '1'='1",
    "x'; DROP TABLE {table}; --",
    "x' UNION SELECT customer_id, 'pwned' FROM {table} --",
    "') OR 1=1 --",
]


@pytest.fixture
def own_table(stack):
    """A throwaway schema with three customers, dropped afterwards (never touches shared tables)."""
    schema = f"mbtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.recs (customer_id text, product text)")
        conn.execute(
            f"INSERT INTO {schema}.recs VALUES ('C1', 'p1'), ('C1', 'p2'), ('C2', 'p3'), ('C3', 'p4')"
        )
    yield f"{schema}.recs"
    with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _recs_card(table: str):
    return parse_card(
        {
            "name": "recs for a customer",
            "display": "table",
            "sql": f"SELECT customer_id, product FROM {table} WHERE TRUE [[AND customer_id = {{{{customer_id}}}}]]",
            "template_tags": {"customer_id": {"type": "text"}},
            "filters": {"customer": "customer_id"},
            "columns": ["customer_id", "product"],
            "layout": {"row": 0, "col": 0, "size_x": 12, "size_y": 6},
        },
        "test",
    )


@pytest.mark.stack
def test_injection_through_the_customer_filter_is_inert(stack, own_table):
    card = _recs_card(own_table)
    with psycopg.connect(stack.postgres.dsn()) as conn:
        assert check_card(conn, "t", card, {"customer_id": "C1"}).rows == 2
        assert check_card(conn, "t", card).rows == 4  # no filter: the optional clause is dropped
        for attack in INJECTIONS:
            result = check_card(conn, "t", card, {"customer_id": attack.format(table=own_table)})
            assert result.ok and not result.error, result.line()
            assert result.rows == 0, f"{attack!r} matched rows: the value reached the SQL text"
        # the table survived every attempt, with all its rows
        assert conn.execute(f"SELECT count(*) FROM {own_table}").fetchone()[0] == 4


@pytest.mark.stack
def test_check_card_reports_sql_errors_and_missing_columns(stack, own_table):
    card = _recs_card(own_table)
    with psycopg.connect(stack.postgres.dsn()) as conn:
        wrong_cols = parse_card(
            {**_raw(card), "columns": ["customer_id", "score"]},
            "test",
        )
        r = check_card(conn, "t", wrong_cols)
        assert not r.ok and r.missing == ("score",)
        broken = parse_card({**_raw(card), "sql": card.sql.replace("product", "no_such_column", 1)}, "test")
        r = check_card(conn, "t", broken)
        assert not r.ok and "no_such_column" in r.error
        empty = check_card(conn, "t", card, {"customer_id": "nobody"}, require_rows=True)
        assert not empty.ok and empty.rows == 0
        # check-sql is read-only: even a card that tries to write is refused by the transaction
        writer = parse_card(
            {
                **_raw(card),
                "sql": f"DELETE FROM {own_table} RETURNING customer_id, product",
                "template_tags": {},
            },
            "t",
        )
        r = check_card(conn, "t", writer)
        assert not r.ok and "read-only" in r.error
        assert conn.execute(f"SELECT count(*) FROM {own_table}").fetchone()[0] == 4


def _raw(card) -> dict:
    return {
        "name": card.name,
        "display": card.display,
        "sql": card.sql,
        "template_tags": {t.name: {"type": t.type} for t in card.template_tags},
        "columns": list(card.columns),
        "layout": {"row": 0, "col": 0, "size_x": 12, "size_y": 6},
    }


# ------------------------------------------------------------------------------------- pipeline-filled database

# cards whose only source is ops.stream_batches: rows there come from the Spark stream alone, which this test does
# not start (other rooms' stream tests do); for them the test requires the SQL to run and return its columns
STREAM_METRIC_SOURCES = ("ops.stream_batches",)


@pytest.mark.stack
@pytest.mark.slow
def test_check_sql_passes_on_a_database_filled_by_the_pipeline(filled, stack, specs, capsys, monkeypatch):
    from ecom.cli import main

    assert {
        "rfm_customers",
        "rfm_segments",
        "cohort_retention",
        "customer_ltv",
        "recs_fbt",
        "recs_personalized",
    } <= set(filled["analytics_tables"])
    # every card runs and returns the columns its visualization needs (the CLI, exit code and all)
    monkeypatch.setattr("dashboards.cli.get_settings", lambda: stack)
    code = main(["metabase", "check-sql"])
    out = capsys.readouterr().out
    assert code == 0, out
    # and every card fed by the batch layer, the speed tables, analytics or quality shows data
    results = check_specs(stack, specs, require_rows=True)
    empty = [
        r.line()
        for r in results
        if not r.ok
        and not any(
            src in next(c for s in specs for c in s.cards if c.name == r.card).sql
            for src in STREAM_METRIC_SOURCES
        )
    ]
    assert empty == []


@pytest.mark.stack
@pytest.mark.slow
def test_customer_filter_of_the_real_recommendations_card(filled, stack, specs):
    products = next(s for s in specs if s.key == "products")
    recs = products.card("Recommendations for the customer")
    with psycopg.connect(stack.postgres.dsn()) as conn:
        customer = conn.execute(
            "SELECT customer_id FROM analytics.recs_personalized WHERE customer_id LIKE %s ORDER BY customer_id DESC "
            "LIMIT 1",
            (f"{filled['spec'].prefix}%",),
        ).fetchone()[0]
        chosen = check_card(conn, products.name, recs, {"customer_id": customer}, require_rows=True)
        assert chosen.ok, chosen.line()
        with conn.cursor() as cur:
            from dashboards.native import render

            sql, params = render(recs, {"customer_id": customer})
            cur.execute(sql, params)
            assert {row[0] for row in cur.fetchall()} == {customer}
        fbt_rows = conn.execute("SELECT count(*) FROM analytics.recs_fbt").fetchone()[0]
        for attack in INJECTIONS:
            hostile = check_card(
                conn, products.name, recs, {"customer_id": attack.format(table="analytics.recs_fbt")}
            )
            assert hostile.ok and hostile.rows == 0, hostile.line()
        assert conn.execute("SELECT count(*) FROM analytics.recs_fbt").fetchone()[0] == fbt_rows
