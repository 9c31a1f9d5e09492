"""Training's history walk, kept between runs: the next run walks only the rows added since (issue 18).

`history_context` is a fold: each row's customer and terminal context depends on the rows before it in
(event_time, transaction_id) order and nothing else, and the state after a prefix of rows continues the
walk exactly (tests/ml/test_features.py). So a run keeps, per data source (a *slot*):

- the end state of its walk (per customer and terminal: one orjson `to_dict()` per id, as the stream's
  keyed state stores them, streaming/speed/state.py), in `<generation>-state.parquet`;
- the customer and terminal context of every row it walked, in walk order, in `<generation>-context.parquet`;
- `manifest.json`: the rows walked, the last (event_time, transaction_id) key, a digest of every walked
  row's walk inputs (ids, time, amount in cents, device, IP country and position: all the walk reads) in walk
  order, and a digest of ml/features.py (any change of the feature code invalidates the cache).

The next run reuses it when the data's first `rows` rows in walk order are exactly the walked ones (same
count up to the key, same digest): the master dataset is append-only, so that is the usual case. It then
walks only the later rows from the cached state. Anything else (a late row before the key, another dataset,
changed feature code, a missing or unreadable file) walks everything, and one log line says why.

The chargeback counts are not cached: they are stateless (labels *reported* before each row) and a label can
land after the row it concerns was walked, so they are recomputed for every row on every run (binary
searches, ~1 s per million rows). The result is the full walk's frame, bit for bit
(tests/ml/test_walk_cache.py).

A new cache is written to new files and published by atomically replacing the manifest; a reader that finds
a generation gone (a concurrent run replaced it) falls back to the full walk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml import features
from ml.features import (
    CUSTOMER_CONTEXT_COLUMNS,
    TERMINAL_CONTEXT_COLUMNS,
    CustomerState,
    HistoryState,
    TerminalState,
    chargeback_context,
    history_context,
)

log = logging.getLogger("ecom.ml.walk_cache")

CACHE_FORMAT = 1  # the layout of the files below; another value is never read
WALKED_COLUMNS = CUSTOMER_CONTEXT_COLUMNS + TERMINAL_CONTEXT_COLUMNS  # the stateful part of the context
MANIFEST = "manifest.json"
STATE_SCHEMA = pa.schema([("kind", pa.string()), ("id", pa.string()), ("state", pa.binary())])
STATE_KINDS = {"customer": CustomerState, "terminal": TerminalState}


@dataclass
class WalkOutcome:
    """What one training walk did with the cache (logged, and reported by `train()`)."""

    used: bool  # the cached prefix was reused
    reason: str  # why (one line)
    rows: int  # rows in the data
    rows_from_cache: int
    rows_walked: int
    load_s: float = 0.0
    walk_s: float = 0.0
    save_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def features_version() -> str:
    """Digest of the feature code: any edit of ml/features.py (a window, a column, the walk) invalidates."""
    return hashlib.sha256(Path(features.__file__).read_bytes()).hexdigest()[:16]


def slot_dir(cache_dir: Path, source: str) -> Path:
    """One cache per data source (master, a simulator's parameters, a bench shape): they never evict each
    other; the digest, not the name, decides whether a cache fits the data."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", source).strip("-")[:40] or "data"
    return cache_dir / f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:10]}"


@dataclass
class _Keys:
    """The data's walk order, its keys and each row's digest of what the walk reads (in walk order)."""

    order: np.ndarray
    t_ns: np.ndarray  # in input order
    ids: np.ndarray  # transaction ids as str, input order
    row_hash: np.ndarray  # uint64 per (row, input), rows in walk order

    def key(self, position: int) -> tuple[int, str]:
        i = int(self.order[position])
        return int(self.t_ns[i]), str(self.ids[i])

    def rows_up_to(self, t: int, tid: str) -> int:
        """Rows whose (event_time, transaction_id) is <= (t, tid)."""
        ties = self.t_ns == t
        return int((self.t_ns < t).sum() + (self.ids[ties] <= tid).sum())

    def digests(self, n: int) -> tuple[str, str]:
        """(digest of the first n rows in walk order, digest of all rows)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.row_hash[:n].tobytes())
        prefix = h.hexdigest()
        h.update(self.row_hash[n:].tobytes())
        return prefix, h.hexdigest()


def _keys(tx: pd.DataFrame) -> _Keys:
    # exactly the values customer_context / terminal_context read, converted as they convert them: numbers
    # by their bits, strings by pandas' 64-bit hash (unique ids hashed directly: factorizing them first
    # costs 5x more); one row of the matrix per transaction, so a prefix's digest is a prefix of its bytes
    t_ns = features._utc_ns(tx["event_time"])
    ids = tx["transaction_id"].astype(str).to_numpy()
    order = features._walk_order(tx, t_ns)
    strings = {
        "customer_id": tx["customer_id"].astype(str),
        "terminal_id": tx["terminal_id"].astype(str),
        "device_id": tx["device_id"].astype(str),
        "ip_country": tx["ip_country"].fillna("").astype(str),
    }
    numbers = [
        t_ns,
        features._cents(tx["amount"]),
        pd.to_numeric(tx["ip_lat"], errors="coerce").to_numpy(dtype=float),
        pd.to_numeric(tx["ip_lon"], errors="coerce").to_numpy(dtype=float),
    ]
    row_hash = np.column_stack(
        [
            pd.util.hash_array(ids, categorize=False),
            *(pd.util.hash_array(v.to_numpy()) for v in strings.values()),
            *(np.ascontiguousarray(v).view(np.uint64) for v in numbers),
        ]
    )[order]
    return _Keys(order, t_ns, ids, row_hash)


# ------------------------------------------------------------------------------------------ files
def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _state_table(state: HistoryState) -> pa.Table:
    kinds, ids, blobs = [], [], []
    for kind, states in (("customer", state.customers), ("terminal", state.terminals)):
        kinds += [kind] * len(states)
        ids += list(states)
        blobs += [orjson.dumps(v.to_dict()) for v in states.values()]
    return pa.table({"kind": kinds, "id": ids, "state": blobs}, schema=STATE_SCHEMA)


def _state_from_table(table: pa.Table) -> HistoryState:
    state = HistoryState()
    parts = {"customer": state.customers, "terminal": state.terminals}
    for kind, key, blob in zip(
        table["kind"].to_pylist(), table["id"].to_pylist(), table["state"].to_pylist(), strict=True
    ):
        parts[kind][key] = STATE_KINDS[kind].from_dict(orjson.loads(blob))
    return state


def save(slot: Path, keys: _Keys, context: np.ndarray, state: HistoryState) -> None:
    """Publish a new cache for the whole data: `context` is WALKED_COLUMNS in walk order."""
    slot.mkdir(parents=True, exist_ok=True)
    generation = uuid.uuid4().hex[:12]
    ctx_file, state_file = f"{generation}-context.parquet", f"{generation}-state.parquet"
    table = pa.table({c: context[:, j] for j, c in enumerate(WALKED_COLUMNS)})
    # lz4: the context is dense floats; a stronger codec costs more seconds than the disk it saves
    _write_atomically(slot / ctx_file, lambda p: pq.write_table(table, p, compression="lz4"))
    _write_atomically(slot / state_file, lambda p: pq.write_table(_state_table(state), p, compression="lz4"))
    n = len(keys.order)
    manifest = {
        "format": CACHE_FORMAT,
        "features_version": features_version(),
        "rows": n,
        "last_key": list(keys.key(n - 1)),
        "digest": keys.digests(n)[1],
        "context_columns": WALKED_COLUMNS,
        "context_file": ctx_file,
        "state_file": state_file,
        "written_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    _write_atomically(slot / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=1)))
    for old in slot.glob("*.parquet"):  # earlier generations (a reader still on one falls back)
        if old.name not in (ctx_file, state_file):
            old.unlink(missing_ok=True)


def _usable_prefix(slot: Path, keys: _Keys) -> tuple[dict | None, str]:
    """(manifest, why) when the cache's rows are exactly the data's first rows in walk order, else
    (None, why not)."""
    path = slot / MANIFEST
    if not path.exists():
        return None, f"no cache yet in {slot}"
    try:
        m = json.loads(path.read_text())
        n, (last_t, last_id) = int(m["rows"]), m["last_key"]
        fmt, version, digest = m["format"], m["features_version"], m["digest"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable cache manifest {path} ({type(exc).__name__}: {exc})"
    if fmt != CACHE_FORMAT:
        return None, f"cache format {fmt} is not {CACHE_FORMAT}"
    if version != features_version():
        return None, "ml/features.py changed since the cache was written"
    if m.get("context_columns") != WALKED_COLUMNS:
        return None, "the context columns changed since the cache was written"
    up_to = keys.rows_up_to(int(last_t), str(last_id))
    if up_to != n:
        what = "rows were added" if up_to > n else "rows are missing"
        return None, (
            f"{abs(up_to - n):,} {what} at or before the cached end ({pd.Timestamp(int(last_t), tz='UTC')}, "
            f"{last_id}): {up_to:,} rows there now, {n:,} cached (a late row or another dataset)"
        )
    if keys.digests(n)[0] != digest:
        return None, f"the first {n:,} rows differ from the cached ones (another dataset or a rewritten row)"
    return m, f"{n:,} rows from the cache"


def _load(slot: Path, m: dict) -> tuple[np.ndarray, HistoryState]:
    table = pq.read_table(slot / m["context_file"])
    if table.num_rows != m["rows"] or table.column_names != WALKED_COLUMNS:
        raise ValueError(f"{m['context_file']} holds {table.num_rows} rows, the manifest {m['rows']}")
    context = np.column_stack([table[c].to_numpy() for c in WALKED_COLUMNS]).astype(float, copy=False)
    return context, _state_from_table(pq.read_table(slot / m["state_file"]))


# ------------------------------------------------------------------------------------------ the walk
def cached_history_context(
    tx: pd.DataFrame,
    chargebacks: pd.DataFrame | None,
    cache_dir: Path,
    source: str,
    progress: bool = False,
) -> tuple[pd.DataFrame, HistoryState, WalkOutcome]:
    """`history_context(tx, chargebacks)` (no baselines, a walk from the first row), reusing the cache of
    `source` under `cache_dir` when it holds a prefix of these rows, and leaving a cache of all of them."""
    if len(tx) == 0:
        enriched, state = history_context(tx, chargebacks, progress=progress)
        return enriched, state, WalkOutcome(False, "no rows", 0, 0, 0)
    slot = slot_dir(cache_dir, source)
    t0 = time.perf_counter()
    keys = _keys(tx)
    m, reason = _usable_prefix(slot, keys)
    n, cached, state = 0, None, HistoryState()
    if m is not None:
        try:
            cached, state = _load(slot, m)
            n = int(m["rows"])
        except Exception as exc:  # a file gone (replaced by a concurrent run) or damaged: walk it all
            m, reason = None, f"unreadable cache file in {slot} ({type(exc).__name__}: {exc})"[:300]
            state = HistoryState()
    load_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    rest = keys.order[n:]
    walked, state = history_context(tx.iloc[rest], None, state, progress=progress)
    context = np.empty((len(tx), len(WALKED_COLUMNS)))  # walk order
    if cached is not None:
        context[:n] = cached
    context[n:] = walked[WALKED_COLUMNS].to_numpy(dtype=float)
    input_order = np.empty_like(context)
    input_order[keys.order] = context
    enriched = pd.concat(
        [
            tx,
            pd.DataFrame(input_order, columns=WALKED_COLUMNS, index=tx.index),
            chargeback_context(tx, chargebacks),
        ],
        axis=1,
    )
    walk_s = time.perf_counter() - t1

    t2 = time.perf_counter()
    if len(rest):
        try:
            save(slot, keys, context, state)
        except OSError as exc:  # a full or read-only disk must not fail a training: the next run walks all
            log.warning("history walk: could not write the cache in %s (%s)", slot, exc)
    save_s = time.perf_counter() - t2
    outcome = WalkOutcome(m is not None, reason, len(tx), n, len(rest), load_s, walk_s, save_s)
    if outcome.used:
        log.info("history walk: %s, %s new rows walked from the cached state", reason, f"{len(rest):,}")
    else:
        (log.info if reason.startswith("no cache yet") else log.warning)(
            "history walk: full walk of %s rows: %s", f"{len(tx):,}", reason
        )
    return enriched, state, outcome
