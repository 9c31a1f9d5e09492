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
