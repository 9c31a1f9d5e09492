"""`ecom metabase check-sql`: run every card's SQL against the platform Postgres, as Metabase would run it.

`run_card` is the one way a card's SQL is run: check-sql and the Dash dashboards (dashboards/app.py) both use it.

Each card runs in its own read-only transaction with its template tags filled from their defaults (or values
given by the caller) as bound parameters, then is rolled back. A card fails when its SQL errors, or when the
result lacks a column its visualization needs (`CardSpec.columns`); optionally also when it returns no rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from dashboards.native import render
from dashboards.spec import CardSpec, DashboardSpec
from kernel.settings import Settings


@dataclass
class CardCheck:
    dashboard: str
    card: str
    ok: bool
    rows: int = 0
    columns: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    error: str = ""
    ms: float = 0.0

    def line(self) -> str:
        where = f"{self.dashboard} / {self.card}"
        if self.error:
            return f"FAIL {where}: {self.error}"
        if self.missing:
            return f"FAIL {where}: result lacks column(s) {list(self.missing)} (got {list(self.columns)})"
        if not self.ok:
            return f"FAIL {where}: returned no rows"
        return f"ok   {where}: {self.rows} row(s), {self.ms:.0f} ms"


@dataclass
class CardResult:
    """What one card's SQL returned (or the error it raised), as Metabase would show it."""

    columns: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    error: str = ""
    ms: float = 0.0


def run_card(
    conn: psycopg.Connection,
    card: CardSpec,
    values: dict[str, Any] | None = None,
    timeout_ms: int = 60_000,
) -> CardResult:
    """Run one card as Metabase runs it (filter values bound, never spliced) in a read-only transaction that is
    rolled back. A SQL error is the result, not an exception; a bad filter value raises SpecError (render)."""
    sql, params = render(card, values)
    start = time.perf_counter()
    try:
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            cur.execute(sql, params)
            rows = cur.fetchall()
            columns = tuple(d.name for d in cur.description or ())
    except psycopg.Error as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        return CardResult(error=message[:300], ms=(time.perf_counter() - start) * 1000)
    return CardResult(columns, rows, ms=(time.perf_counter() - start) * 1000)


def check_card(
    conn: psycopg.Connection,
    dashboard: str,
    card: CardSpec,
    values: dict[str, Any] | None = None,
    require_rows: bool = False,
    timeout_ms: int = 60_000,
) -> CardCheck:
    """Run one card read-only; never raises for a SQL error (that is the finding), always rolls back."""
    result = run_card(conn, card, values, timeout_ms)
    if result.error:
        return CardCheck(dashboard, card.name, False, error=result.error)
    missing = tuple(c for c in card.columns if c not in result.columns)
    ok = not missing and (bool(result.rows) or not require_rows)
    return CardCheck(dashboard, card.name, ok, len(result.rows), result.columns, missing, ms=result.ms)


def check_specs(
    settings: Settings,
    specs: list[DashboardSpec],
    values: dict[str, Any] | None = None,
    require_rows: bool = False,
    conn: psycopg.Connection | None = None,
) -> list[CardCheck]:
    """Check every card of every spec; `values` (tag -> value) override defaults where a card has that tag."""
    own = conn is None
    if conn is None:
        conn = psycopg.connect(settings.postgres.dsn(), connect_timeout=5)
    try:
        results = []
        for spec in specs:
            for card in spec.cards:
                card_values = {k: v for k, v in (values or {}).items() if k in card.tag_names}
                results.append(check_card(conn, spec.name, card, card_values, require_rows))
        return results
    finally:
        if own:
            conn.close()
