"""Reference data (catalog, customers, merchants, terminals) into Postgres schema `reference`.

Dimensions are state, not events: they are upserted keyed by id (COPY into a temp table, then one
INSERT .. ON CONFLICT per table), and `updated_at` only moves when a row's attributes really change,
so dbt snapshots see a clean SCD2 history. The DDL is kernel/sql/010_reference.sql.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import psycopg

from kernel.db import connect
from kernel.errors import EcomError
from kernel.settings import Settings, get_settings

if TYPE_CHECKING:
    from events.simulator.engine import ShopSimulator

# table -> (key, columns written; every other DataFrame column is simulation-only and stays out)
REFERENCE_TABLES: dict[str, tuple[str, list[str]]] = {
    "customers": (
        "customer_id",
        [
            "customer_id",
            "first_name",
            "signup_at",
            "home_country",
            "home_city",
            "home_lat",
            "home_lon",
            "currency",
            "value_tier",
            "preferred_payment",
            "preferred_channel",
            "n_devices",
            "favourite_category",
        ],
    ),
    "products": (
        "product_id",
        ["product_id", "name", "category", "brand", "price", "currency", "attributes"],
    ),
    "merchants": ("merchant_id", ["merchant_id", "name", "category", "country", "city", "has_stores"]),
    "terminals": ("terminal_id", ["terminal_id", "merchant_id", "kind", "city", "country", "lat", "lon"]),
}


def _rows(df: pd.DataFrame, cols: list[str]) -> list[tuple]:
    out = df[cols].copy()
    if "attributes" in out:
        out["attributes"] = out["attributes"].map(lambda d: json.dumps(d, sort_keys=True))
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].map(lambda t: t.to_pydatetime())
    return [
        tuple(None if (isinstance(v, float) and v != v) else v for v in row) for row in out.itertuples(False)
    ]


def upsert_frame(conn: psycopg.Connection, table: str, df: pd.DataFrame) -> int:
    """Upsert one reference table from a DataFrame; returns how many rows were inserted or changed."""
    key, cols = REFERENCE_TABLES[table]
    col_list = ", ".join(cols)
    changed = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != key)
    differs = " OR ".join(f"t.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in cols if c != key)
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE stage_{table} (LIKE reference.{table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        with cur.copy(f"COPY stage_{table} ({col_list}) FROM STDIN") as copy:
            for row in _rows(df, cols):
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO reference.{table} AS t ({col_list}) SELECT {col_list} FROM stage_{table} "
            f"ON CONFLICT ({key}) DO UPDATE SET {changed}, updated_at = clock_timestamp() WHERE {differs}"
        )
        return cur.rowcount


def write_reference(
    sim: ShopSimulator, settings: Settings | None = None, as_of: datetime | None = None
) -> dict[str, int]:
    """Write the simulator's reference data as of `as_of` (default: the end of its window): customers
    signed up by then, with their home after any move. One clear EcomError when Postgres is unreachable."""
    s = settings or get_settings()
    frames = {
        "customers": sim.customers_as_of(as_of or sim.end),
        "products": sim.products,
        "merchants": sim.merchants,
        "terminals": sim.terminals,
    }
    try:
        with connect(s) as conn:
            counts = {name: upsert_frame(conn, name, df) for name, df in frames.items()}
            conn.commit()
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EcomError(
            f"Postgres not reachable at {s.postgres.host}:{s.postgres.port} for reference data ({first}); "
            "run `ecom up`, or pass --no-reference to produce events only"
        ) from exc
    except psycopg.errors.UndefinedTable as exc:
        raise EcomError(
            "schema `reference` is missing in Postgres; run `ecom up` (it applies kernel/sql/010_reference.sql)"
        ) from exc
    return counts
