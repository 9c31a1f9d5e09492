"""`ecom evaluate`: how good a registered model is on a period, scored offline and as the stream stored it.

Adapters around the pure `ml.evaluate.evaluation_report`:

- offline: the period's transactions (master dataset, or a CSV/Parquet file with the contract's columns and
  an `is_fraud` column) get their context from `ml.features.history_context` over everything before the
  period's end (walked in time-ordered chunks with the state carried over, which gives the same numbers as
  one walk, tests/ml/test_features.py), then the model version scores them;
- stored (`--stored`): the scores the speed layer wrote to `speed.scored_transactions` for the period.

Labels are the chargebacks known now (`master.chargebacks`, or the file's `is_fraud`): evaluation labels,
never features (the features only count chargebacks reported before each transaction). Both are judged at
the model version's deployed threshold (its `threshold` tag) with k = its alert budget per day (its
`alerts_per_day` tag, the budget the threshold was chosen for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings
from ml.evaluate import evaluation_report
from ml.features import CHARGEBACK_LOOKBACK, INPUT_COLUMNS, history_context

LABEL_COLUMN = "is_fraud"
TRUE_LABELS = {"1", "true", "t", "yes", "y", "fraud"}
WALK_CHUNK_ROWS = 20_000  # per history_context call: bounded memory, a progress tick, same numbers
SCORE_CHUNK_ROWS = 50_000
# a file's frauds become chargebacks this long after the transaction, as `ecom replay` does by default
FILE_LABEL_DELAY = timedelta(days=30)


@dataclass
class Period:
    start: pd.Timestamp
    end: pd.Timestamp

    def mask(self, event_time: pd.Series) -> np.ndarray:
        return ((event_time >= self.start) & (event_time < self.end)).to_numpy()


def parse_period(start: str, end: str) -> Period:
    """--start / --end (dates or ISO timestamps, UTC when no offset) -> Period, or a one-line EcomError."""

    def stamp(text: str, flag: str) -> pd.Timestamp:
        try:
            t = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise EcomError(f"{flag} {text!r} is not a date; use YYYY-MM-DD or an ISO timestamp") from None
        return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")

    period = Period(stamp(start, "--start"), stamp(end, "--end"))
    if period.end <= period.start:
        raise EcomError(f"--end {end} is not after --start {start}; give a period of at least one day")
    return period


# ------------------------------------------------------------------------------------------ data
def labels_from_file(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A CSV/Parquet with the contract's feature columns + `is_fraud` -> (transactions, chargebacks)."""
    from ml.data import CB_COLUMNS, tidy_transactions

    if not path.exists():
        raise EcomError(f"{path} does not exist; give --from master or a CSV/Parquet file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise EcomError(f"{path}: unknown file type {suffix!r}; give a .csv or .parquet file")
    ids = {c: str for c in ("transaction_id", "customer_id", "merchant_id", "terminal_id", "device_id")}
    raw = pd.read_parquet(path) if suffix != ".csv" else pd.read_csv(path, dtype=ids)
    missing = [c for c in [*INPUT_COLUMNS, LABEL_COLUMN] if c not in raw.columns]
    if missing:
        raise EcomError(
            f"{path} lacks columns {missing}; it needs the contract's columns and {LABEL_COLUMN!r} "
            "(or replay it with `ecom replay` and evaluate --from master)"
        )
    tx = tidy_transactions(raw[[*INPUT_COLUMNS, LABEL_COLUMN]])
    fraud = tx[LABEL_COLUMN].astype(str).str.strip().str.lower().isin(TRUE_LABELS)
    cb = tx.loc[fraud, ["transaction_id", "customer_id", "terminal_id", "event_time"]].copy()
    cb["reported_at"] = cb.pop("event_time") + FILE_LABEL_DELAY
    cb["fraud_scenario"] = "file"
    return tx.drop(columns=[LABEL_COLUMN]), cb[CB_COLUMNS].reset_index(drop=True)


def load_source(source: str, period: Period, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every transaction before the period's end (the context needs the history) + the known labels."""
    if source == "master":
        from ml.data import load_master

        try:
            tx, cb = load_master(settings, until=period.end.to_pydatetime())
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise EcomError(
                    f"cannot read master.transactions ({exc.__class__.__name__}); start the stack: ecom up"
                ) from exc
            raise
    else:
        tx, cb = labels_from_file(Path(source))
        tx = tx[tx["event_time"] < period.end].reset_index(drop=True)
    if not period.mask(tx["event_time"]).any():
        raise EcomError(
            f"no transaction in {source} between {period.start.date()} and {period.end.date()}; "
            "pick a period the data covers"
        )
    return tx, cb


def _chunk_bounds(event_time: pd.Series, rows: int) -> list[tuple[int, int]]:
    """[lo, hi) row ranges of about `rows`, cut only where the time changes (no tie split across chunks)."""
    t = event_time.to_numpy()
    cuts = sorted({int(np.searchsorted(t, t[i], side="left")) for i in range(rows, len(t), rows)} - {0})
    edges = [0, *cuts, len(t)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def context_for_period(
    tx: pd.DataFrame, chargebacks: pd.DataFrame, period: Period, progress: bool = True
) -> pd.DataFrame:
    """The period's rows with their context, walked over the whole history before it (chunked, exact)."""
    from ml.data import model_input

    tx = tx.sort_values(["event_time", "transaction_id"], kind="mergesort").reset_index(drop=True)
    cb_ns = chargebacks["reported_at"]
    state, kept = None, []
    bounds = _chunk_bounds(tx["event_time"], WALK_CHUNK_ROWS)
    with tqdm(total=len(tx), unit="tx", desc="context", disable=None if progress else True) as bar:
        for lo, hi in bounds:
            chunk = tx.iloc[lo:hi]
            first, last = chunk["event_time"].iloc[0], chunk["event_time"].iloc[-1]
            # only the labels a row of this chunk can count (reported before it, within the look-back)
            cb = chargebacks[(cb_ns < last) & (cb_ns >= first - CHARGEBACK_LOOKBACK)]
            enriched, state = history_context(chunk, cb, state)
            inside = period.mask(enriched["event_time"])
            if inside.any():
                kept.append(model_input(enriched[inside]))
            bar.update(hi - lo)
    return pd.concat(kept, ignore_index=True)


def score_rows(model: Any, enriched: pd.DataFrame, progress: bool = True) -> np.ndarray:
    """The model version's scores for enriched rows, in chunks (a progress bar on long runs)."""
    from ml.model import score

    parts = []
    with tqdm(total=len(enriched), unit="tx", desc="score", disable=None if progress else True) as bar:
        for lo in range(0, len(enriched), SCORE_CHUNK_ROWS):
            part = enriched.iloc[lo : lo + SCORE_CHUNK_ROWS]
            parts.append(score(model, part))
            bar.update(len(part))
    return np.concatenate(parts) if parts else np.zeros(0)


def offline_scores(
    tx: pd.DataFrame, chargebacks: pd.DataFrame, period: Period, model: Any, progress: bool = True
) -> pd.DataFrame:
    """The period's rows scored offline by `model`: one row per transaction (transaction_id, customer_id,
    event_time, label = a known chargeback, score). What the stream must have stored for the same rows."""
    enriched = context_for_period(tx, chargebacks, period, progress)
    known = set(chargebacks["transaction_id"])
    return pd.DataFrame(
        {
            "transaction_id": enriched["transaction_id"],
            "event_time": enriched["event_time"],
            "customer_id": enriched["customer_id"],
            "label": enriched["transaction_id"].isin(known).astype(int),
            "score": score_rows(model, enriched, progress),
        }
    )


def stored_scores(period: Period, settings: Settings) -> pd.DataFrame:
    """What the speed layer wrote for the period, with each row's label from master.chargebacks."""
    from kernel.db import connect

    sql = (
        "SELECT s.transaction_id, s.customer_id, s.event_time, s.fraud_score, s.is_alert, s.model_version, "
        "(c.transaction_id IS NOT NULL)::int AS label "
        "FROM speed.scored_transactions s LEFT JOIN master.chargebacks c USING (transaction_id) "
        "WHERE s.event_time >= %s AND s.event_time < %s"
    )
    cols = ["transaction_id", "customer_id", "event_time", "score", "is_alert", "model_version", "label"]
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, (period.start.to_pydatetime(), period.end.to_pydatetime()))
        frame = pd.DataFrame(cur.fetchall(), columns=cols)
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    frame["score"] = frame["score"].astype(float)
    return frame


# ------------------------------------------------------------------------------------------ the report
def k_for(champ: Any, alerts_per_day: float | None, period_rows: int, period_days: int) -> int:
    """Reviews per day: --alerts-per-day, else the version's budget, else 2 % of the daily volume."""
    budget = alerts_per_day or float(champ.tags.get("alerts_per_day") or 0)
    if not budget:
        budget = 0.02 * period_rows / max(1, period_days)
    return max(1, int(round(budget)))


def evaluate_period(
    source: str,
    period: Period,
    model: str = "champion",
    stored: bool = False,
    settings: Settings | None = None,
    model_name: str | None = None,
    alerts_per_day: float | None = None,
    progress: bool = True,
    stored_required: bool = True,
) -> dict[str, Any]:
    """Everything `ecom evaluate` prints: the model scored offline (and the stream's stored scores).

    `stored_required=False` (the Dagster asset): a period the stream wrote nothing for gets no `stored`
    part (and `stored_rows: 0`) instead of an error."""
    from ml import registry

    s = settings or get_settings()
    name = model_name or s.mlflow.model_name
    tx, cb = load_source(source, period, s)
    champ = registry.load_champion(s, name) if model == "champion" else _load_version(model, s, name)
    offline = offline_scores(tx, cb, period, champ.model, progress)
    days = int(offline["event_time"].dt.floor("D").nunique())
    k = k_for(champ, alerts_per_day, len(offline), days)
    out: dict[str, Any] = {
        "source": source,
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "model": {"name": name, "version": champ.version, "threshold": champ.threshold},
        "k_per_day": k,
        "labels": "master.chargebacks known now"
        if source == "master"
        else f"{LABEL_COLUMN} column of the file",
        "offline": evaluation_report(offline, champ.threshold, k),
    }
    if stored:
        rows = stored_scores(period, s)
        out["stored_rows"] = len(rows)
        if rows.empty and not stored_required:
            return out
        if rows.empty:
            raise EcomError(
                f"speed.scored_transactions has no row between {period.start.date()} and "
                f"{period.end.date()}; stream that period first (ecom stream) or drop --stored"
            )
        out["stored"] = evaluation_report(rows, champ.threshold, k)
        out["stored"]["model_versions"] = {
            str(v): int(n) for v, n in rows["model_version"].value_counts().sort_index().items()
        }
        out["stored"]["alert_rate_as_stored"] = float(rows["is_alert"].mean())
    return out


def _load_version(version: str, settings: Settings, name: str):
    from mlflow.exceptions import MlflowException

    from ml import registry

    if not version.isdigit():
        raise EcomError(f"--model {version!r}: give a version number or 'champion'")
    try:
        return registry.load_version(version, settings, name)
    except MlflowException as exc:
        raise EcomError(
            f"model {name} has no version {version} ({exc.error_code}); see the versions in MLflow"
        ) from None


# ------------------------------------------------------------------------------------------ for each champion
def labelled_period(
    first: pd.Timestamp, latest: pd.Timestamp, days: float, label_delay_days: float
) -> Period:
    """The `days` that end one label delay before `latest` (their frauds had time to be reported); a history
    shorter than the delay gets its last `days` (labels still arriving). Never starts before `first`."""
    end = latest - pd.Timedelta(days=label_delay_days)
    if end <= first:
        end = latest + pd.Timedelta(microseconds=1)
    return Period(max(first, end - pd.Timedelta(days=days)), end)


def recent_period(settings: Settings, days: float, label_delay_days: float) -> Period:
    """`labelled_period` of the master dataset: a new champion's evaluation period when none is given."""
    from kernel.db import connect

    with connect(settings) as conn:
        first, latest = conn.execute(
            "SELECT min(event_time), max(event_time) FROM master.transactions"
        ).fetchone()
    if latest is None:
        raise EcomError("master.transactions is empty; land events before evaluating a model on it")
    utc = [pd.Timestamp(t).tz_convert("UTC") for t in (first, latest)]
    return labelled_period(*utc, days, label_delay_days)


def report_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report's figures as flat MLflow metric names: `evaluation.<offline|stored>.<figure>` (NaN left
    out: a period without fraud has no ROC AUC)."""
    out = {}
    for side in ("offline", "stored"):
        for key, value in (report.get(side) or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                continue
            out[f"evaluation.{side}.{key}"] = float(value)
    return out


def log_report(report: dict[str, Any], settings: Settings) -> str:
    """Log the report on the model version's own MLflow run (metrics + the period as tags); its run id."""
    import time

    from mlflow.entities import Metric, RunTag

    from ml import registry

    m = report["model"]
    client = registry.client(settings)
    run_id = client.get_model_version(m["name"], str(m["version"])).run_id
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in report_metrics(report).items()],
        tags=[
            RunTag("evaluation.source", str(report["source"])),
            RunTag("evaluation.period_start", report["period"]["start"]),
            RunTag("evaluation.period_end", report["period"]["end"]),
            RunTag("evaluation.k_per_day", str(report["k_per_day"])),
        ],
    )
    return run_id
