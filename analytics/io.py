"""Edges of the analytics room: reading a transaction history (CSV file or the warehouse) into the one
canonical frame the pure functions take, validating it, and writing results (files or Postgres tables).

The canonical *lines* frame has one row per purchased product line (or per order when products are unknown):

    customer_id  str
    order_id     str             (one checkout; derived from customer + time when the source has none)
    order_time   datetime64[ns]  (naive UTC)
    amount       float           (revenue of the line; >= 0)
    product_id   str             (optional)
    quantity     float           (optional; 1 when a product is given without quantity)
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kernel.errors import EcomError

CANONICAL = ("customer_id", "order_id", "order_time", "amount", "product_id", "quantity")


@dataclass(frozen=True)
class ColumnMap:
    """Which source column holds each canonical field (None: the source has no such column)."""

    customer: str = "customer_id"
    date: str = "order_date"
    amount: str = "amount"
    product: str | None = None
    quantity: str | None = None
    order: str | None = None


def _rows(idx: Sequence[int], offset: int = 2) -> str:
    """Human row numbers (CSV line numbers: header is line 1) of the first few bad rows."""
    shown = ", ".join(str(int(i) + offset) for i in list(idx)[:5])
    more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
    return f"{'row' if len(idx) == 1 else 'rows'} {shown}{more}"


def normalize_transactions(raw: pd.DataFrame, cols: ColumnMap, source: str = "input") -> pd.DataFrame:
    """Map, parse and validate a raw frame into the canonical lines frame; EcomError names bad rows and why.

    Row numbers in messages are CSV line numbers (header = line 1), which is what a person opens the file at.
    """
    wanted = {"--customer-col": cols.customer, "--date-col": cols.date, "--amount-col": cols.amount}
    if cols.product:
        wanted["--product-col"] = cols.product
    if cols.quantity:
        wanted["--quantity-col"] = cols.quantity
    if cols.order:
        wanted["--order-col"] = cols.order
    missing = [f"'{c}' ({flag})" for flag, c in wanted.items() if c not in raw.columns]
    if missing:
        raise EcomError(
            f"{source}: missing column {', '.join(missing)}; columns present: {', '.join(map(str, raw.columns))}; "
            "name the right ones with the --*-col flags"
        )
    if raw.empty:
        raise EcomError(f"{source}: no rows; give a file with at least one transaction")

    out = pd.DataFrame(index=raw.index)
    cust = raw[cols.customer]
    bad = cust.isna() | (cust.astype(str).str.strip() == "")
    if bad.any():
        raise EcomError(
            f"{source}: empty customer id in column '{cols.customer}' at {_rows(np.flatnonzero(bad))}"
        )
    out["customer_id"] = cust.astype(str).str.strip()

    when = pd.to_datetime(raw[cols.date], errors="coerce", utc=True, format="mixed")
    bad = when.isna()
    if bad.any():
        examples = raw[cols.date][bad].astype(str).head(3).tolist()
        raise EcomError(
            f"{source}: unparseable date in column '{cols.date}' at {_rows(np.flatnonzero(bad))} "
            f"(e.g. {examples}); use ISO dates like 2024-03-31 or 2024-03-31T14:05:00Z"
        )
    out["order_time"] = when.dt.tz_localize(None).astype("datetime64[ns]")

    amount = pd.to_numeric(raw[cols.amount], errors="coerce")
    bad = amount.isna()
    if bad.any():
        raise EcomError(
            f"{source}: non-numeric amount in column '{cols.amount}' at {_rows(np.flatnonzero(bad))}"
        )
    bad = amount < 0
    if bad.any():
        raise EcomError(
            f"{source}: negative amount in column '{cols.amount}' at {_rows(np.flatnonzero(bad))}; "
            "remove returns/refunds (or net them into their order) before running analytics"
        )
    out["amount"] = amount.astype(float)

    if cols.order:
        out["order_id"] = raw[cols.order].astype(str)
    else:
        # without an order id, one customer's lines at the same timestamp are one checkout
        out["order_id"] = out["customer_id"] + "@" + out["order_time"].astype("int64").astype(str)

    if cols.product:
        prod = raw[cols.product]
        bad = prod.isna() | (prod.astype(str).str.strip() == "")
        if bad.any():
            raise EcomError(
                f"{source}: empty product id in column '{cols.product}' at {_rows(np.flatnonzero(bad))}"
            )
        out["product_id"] = prod.astype(str).str.strip()
        if cols.quantity:
            qty = pd.to_numeric(raw[cols.quantity], errors="coerce")
            bad = qty.isna() | (qty <= 0)
            if bad.any():
                raise EcomError(
                    f"{source}: quantity in column '{cols.quantity}' missing or not positive at "
                    f"{_rows(np.flatnonzero(bad))}"
                )
            out["quantity"] = qty.astype(float)
        else:
            out["quantity"] = 1.0
    return out.reset_index(drop=True)[[c for c in CANONICAL if c in out.columns]]


def compact_ids(lines: pd.DataFrame) -> pd.DataFrame:
    """Id columns as categoricals, so grouping and de-duplicating millions of lines works on integer codes.

    customer_id and product_id get lexically sorted categories (sorting by them is sorting by the string);
    order_id keeps the order of first appearance (sorting a million order ids would cost seconds, and only
    tie-breaks between two orders of one customer at the same instant depend on it).
    """
    out = None
    for col in ("customer_id", "product_id", "order_id"):
        if col not in lines.columns or isinstance(lines[col].dtype, pd.CategoricalDtype):
            continue
        if out is None:
            out = lines.copy()
        codes, uniques = pd.factorize(out[col])
        if col != "order_id":
            order = np.argsort(np.asarray(uniques, dtype=object).astype(str), kind="stable")
            remap = np.empty_like(order)
            remap[order] = np.arange(len(order))
            codes = np.where(codes >= 0, remap[codes], -1)
            uniques = uniques[order]
        out[col] = pd.Categorical.from_codes(codes, categories=pd.Index(uniques))
    return lines if out is None else out


def read_transactions_csv(path: str | Path, cols: ColumnMap) -> pd.DataFrame:
    """Read and validate a CSV history (see normalize_transactions)."""
    p = Path(path)
    if not p.is_file():
        raise EcomError(f"{p}: no such file; pass the CSV path with --from-csv")
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise EcomError(
            f"{p}: not a readable CSV ({str(exc).splitlines()[0]}); give a comma-separated file"
        ) from exc
    return normalize_transactions(raw, cols, source=str(p))


def read_products_csv(path: str | Path, product_col: str = "product_id") -> pd.DataFrame:
    """Optional product attributes for content-based similarity: product_id + any attribute columns."""
    p = Path(path)
    if not p.is_file():
        raise EcomError(f"{p}: no such file; pass the product attributes CSV with --products-csv")
    df = pd.read_csv(p, dtype=str)
    if product_col not in df.columns:
        raise EcomError(f"{p}: missing column '{product_col}'; the products file needs a product id column")
    df = df.rename(columns={product_col: "product_id"})
    if "price" in df.columns:
        df["price"] = pd.to_numeric(df["price"], errors="coerce")
    return df


def lines_from_events(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Canonical lines from transaction.v1 events (e.g. the shop simulator's history): one row per line item,
    amount = quantity x unit_price in the transaction's currency (as fct_order_lines.line_amount)."""
    rows = [
        (
            ev["customer_id"],
            ev["transaction_id"],
            ev["event_time"],
            li["quantity"],
            li["unit_price"],
            li["product_id"],
        )
        for ev in events
        for li in ev["line_items"]
    ]
    df = pd.DataFrame(
        rows, columns=["customer_id", "order_id", "order_time", "quantity", "unit_price", "product_id"]
    )
    df["order_time"] = pd.to_datetime(df["order_time"], utc=True, format="ISO8601").dt.tz_localize(None)
    df["order_time"] = df["order_time"].astype("datetime64[ns]")
    df["quantity"] = df["quantity"].astype(float)
    df["amount"] = (df["quantity"] * df["unit_price"].astype(float)).round(2)
    return df[list(CANONICAL)]


# ---------------------------------------------------------------------------------------------------------
# files


def write_outputs(
    tables: Mapping[str, pd.DataFrame], params: Mapping[str, object], out_dir: str | Path
) -> list[Path]:
    """Write each table as <name>.csv and each params entry as <name>.json into out_dir."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in tables.items():
        path = d / f"{name}.csv"
        df.to_csv(path, index=False)
        written.append(path)
    for name, obj in params.items():
        path = d / f"{name}.json"
        path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
        written.append(path)
    return written


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, pd.Timestamp):
        return o.isoformat()
    raise TypeError(type(o))


# ---------------------------------------------------------------------------------------------------------
# Postgres


def _relation_sql(conn, qualified: str) -> str:
    """A (schema.)table name from configuration as quoted identifiers: never spliced into SQL as text."""
    from psycopg import sql as pgsql

    parts = qualified.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise EcomError(f"not a table name: {qualified!r}; give it as schema.table")
    return pgsql.Identifier(*parts).as_string(conn)


def _relation_exists(conn, qualified: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()[0]


def _copy_df(conn, sql: str) -> pd.DataFrame:
    """A query's rows via COPY ... TO STDOUT (CSV) and pandas' CSV parser: several times faster than fetching
    Python tuples when reading millions of order lines. Ids stay text; timestamps are parsed by the caller."""
    buf = io.BytesIO()
    with conn.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
        for chunk in copy:
            buf.write(chunk)
    buf.seek(0)
    return pd.read_csv(
        buf,
        dtype={"customer_id": str, "order_id": str, "product_id": str, "order_time": str},
        keep_default_na=False,
        na_values=[""],
    )


def _query_df(conn, sql: str, params: Sequence[object] | None = None) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        names = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=names)


ORDER_LINES = "marts.fct_order_lines"  # the batch layer's one definition of an order line (dbt model)
MARTS_LINES_SQL = (
    "SELECT customer_id, transaction_id AS order_id, event_time AS order_time, line_amount::float8 AS amount, "
    f"product_id, quantity::float8 AS quantity FROM {ORDER_LINES}"
)


def read_lines_from_db(conn, lines_table: str | None = None) -> tuple[pd.DataFrame, str]:
    """Canonical lines from the warehouse; returns (frame, the relation read).

    Default: the batch layer's marts.fct_order_lines (one row per product line), the only definition of an
    order line; it is not re-derived here from the master dataset. lines_table: any relation with the
    canonical columns instead (tests point the assets at their own data).
    """
    if lines_table:
        df, src = _copy_df(conn, f"SELECT * FROM {_relation_sql(conn, lines_table)}"), lines_table
    elif _relation_exists(conn, ORDER_LINES):
        df, src = _copy_df(conn, MARTS_LINES_SQL), ORDER_LINES
    else:
        raise EcomError(f"{ORDER_LINES} does not exist yet; build the batch layer first: ecom batch")
    if df.empty:
        return df.reindex(columns=list(CANONICAL)), src
    df["order_time"] = (
        pd.to_datetime(df["order_time"], utc=True, format="ISO8601")
        .dt.tz_localize(None)
        .astype("datetime64[ns]")
    )
    df["amount"] = df["amount"].astype(float)
    for c in ("customer_id", "order_id", "product_id"):
        if c in df.columns:
            df[c] = df[c].astype(str)
    if "quantity" in df.columns:
        df["quantity"] = df["quantity"].astype(float)
    return df[[c for c in CANONICAL if c in df.columns]], src


def read_products_from_db(conn, products_table: str | None = None) -> pd.DataFrame | None:
    """Product attributes (marts.dim_product, else reference.products); None when neither exists."""
    table = products_table or next(
        (t for t in ("marts.dim_product", "reference.products") if _relation_exists(conn, t)), None
    )
    if table is None:
        return None
    df = _query_df(conn, f"SELECT * FROM {_relation_sql(conn, table)}")
    if "product_id" not in df.columns:
        return None
    df["product_id"] = df["product_id"].astype(str)
    for price_col in ("price", "list_price", "unit_price", "base_price"):
        if price_col in df.columns:
            df["price"] = pd.to_numeric(df[price_col], errors="coerce")
            break
    return df


def read_customer_ids_from_db(conn, customers_table: str | None = None, auto: bool = True) -> pd.Index | None:
    """Every known customer id (marts.dim_customer, else reference.customers), or None when there is none."""
    table = customers_table
    if table is None and auto:
        table = next(
            (t for t in ("marts.dim_customer", "reference.customers") if _relation_exists(conn, t)), None
        )
    if table is None:
        return None
    rows = conn.execute(f"SELECT DISTINCT customer_id::text FROM {_relation_sql(conn, table)}").fetchall()
    return pd.Index(sorted(r[0] for r in rows), dtype=object)


_PG_TYPES = {"i": "bigint", "u": "bigint", "f": "double precision", "b": "boolean", "M": "timestamp"}


def replace_table(conn, schema: str, table: str, df: pd.DataFrame, comment: str | None = None) -> int:
    """Replace schema.table with df atomically: load a fresh temp-named table, then drop + rename in one transaction.

    Readers (Metabase, dbt docs) see the old table or the new one, never a half-loaded one.
    Returns the number of rows written.
    """
    tmp = f"{table}__new_{uuid.uuid4().hex[:8]}"
    cols = []
    for name, dtype in df.dtypes.items():
        cols.append(f'"{name}" {_PG_TYPES.get(dtype.kind, "text")}')
    with conn.transaction():
        conn.execute(f'CREATE TABLE "{schema}"."{tmp}" ({", ".join(cols)})')
        buf = io.StringIO()
        df.to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
        buf.seek(0)
        col_list = ", ".join(f'"{c}"' for c in df.columns)
        with (
            conn.cursor() as cur,
            cur.copy(
                f'COPY "{schema}"."{tmp}" ({col_list}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')'
            ) as copy,
        ):
            while chunk := buf.read(1 << 20):
                copy.write(chunk)
        # lock the old table for the swap so concurrent refreshes serialize instead of interleaving
        conn.execute(f'DROP TABLE IF EXISTS "{schema}"."{table}"')
        conn.execute(f'ALTER TABLE "{schema}"."{tmp}" RENAME TO "{table}"')
        if comment:
            conn.execute(
                f'COMMENT ON TABLE "{schema}"."{table}" IS %s'.replace("%s", _quote_literal(comment))
            )
    return len(df)


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_table(conn, schema: str, table: str) -> pd.DataFrame:
    return _query_df(conn, f'SELECT * FROM "{schema}"."{table}"')
