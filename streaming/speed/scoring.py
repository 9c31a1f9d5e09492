"""Scoring on the executors: the champion model over Arrow batches (mapInPandas), hot-swapped between batches.

The driver keeps a `ChampionCache`: between micro-batches it asks the registry which version the champion
alias points at (one cheap call) and, when it moved, loads the new version and broadcasts it; the next
batch's `mapInPandas` closure carries the new broadcast, so the query switches models without a restart and
every row records the version that scored it.

Lambda merge. The keyed state (state.py) knows the customer's *recent* history; the batch layer's
`marts.customer_baselines` knows the long history. `ml.features.fill_from_baselines` (the one cold-start
fill, the same function `ml.features.history_context` applies) gives a customer the stream has barely seen
(after a fresh checkpoint, or once forgotten after STATE_TTL) their habits from the baseline, but only from a
baseline built before the event (event time). A missing baselines table simply means no fill (cold start).

Every look-back is bounded by the event time of the rows being scored, never the wall clock: the driver
broadcasts every chargeback (one per fraud: small), and `ml.features.chargeback_context` counts, for each
row, those reported in the 7 / 30 days before its own event time, so a replayed history from years ago gets
the same chargeback context as training.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from kernel.settings import Settings, get_settings
from ml.features import chargeback_context, fill_from_baselines
from streaming.speed.state import utc_event_time

log = logging.getLogger("ecom.speed.scoring")

SPEED_COLUMNS = [
    "transaction_id",
    "customer_id",
    "merchant_id",
    "terminal_id",
    "event_time",
    "currency",
    "amount",
    "payment_method",
    "channel",
    "device_type",
    "ip_country",
    "n_items",
    "fraud_score",
    "is_alert",
    "model_version",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
]
OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField("transaction_id", T.StringType()),
        T.StructField("customer_id", T.StringType()),
        T.StructField("merchant_id", T.StringType()),
        T.StructField("terminal_id", T.StringType()),
        T.StructField("event_time", T.TimestampType()),
        T.StructField("currency", T.StringType()),
        T.StructField("amount", T.DoubleType()),
        T.StructField("payment_method", T.StringType()),
        T.StructField("channel", T.StringType()),
        T.StructField("device_type", T.StringType()),
        T.StructField("ip_country", T.StringType()),
        T.StructField("n_items", T.IntegerType()),
        T.StructField("fraud_score", T.DoubleType()),
        T.StructField("is_alert", T.BooleanType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("threshold", T.DoubleType()),
        T.StructField("reasons", T.StringType()),
        T.StructField("kafka_topic", T.StringType()),
        T.StructField("kafka_partition", T.IntegerType()),
        T.StructField("kafka_offset", T.LongType()),
        T.StructField("kafka_timestamp", T.TimestampType()),
        T.StructField("raw_payload", T.BinaryType()),
        T.StructField("reject_reason", T.StringType()),
    ]
)


# ------------------------------------------------------------------------------------------ pure parts
def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def score_frame(
    pdf: pd.DataFrame,
    champion: Any,
    baselines: pd.DataFrame | None,
    chargebacks: pd.DataFrame | None,
    explain_top: int = 3,
) -> pd.DataFrame:
    """One Arrow batch of context-enriched rows -> OUTPUT_SCHEMA rows (scored, or passed-through rejects). Pure."""
    rejected = pdf["reject_reason"].notna().to_numpy()
    good = pdf.loc[~rejected].reset_index(drop=True)
    out_cols = [f.name for f in OUTPUT_SCHEMA.fields]
    parts = []
    if len(good):
        tx = good.assign(event_time=utc_event_time(good["event_ts"]))
        tx = pd.concat([tx, chargeback_context(tx, chargebacks)], axis=1)
        tx = fill_from_baselines(tx, baselines)
        feats = champion.model.named_steps["features"].transform(tx)
        scores = np.asarray(champion.model.named_steps["scorer"].score_samples(feats), dtype=float)
        alert = scores >= champion.threshold
        reasons = np.full(len(tx), None, dtype=object)
        if alert.any():
            rows = champion.reasons(tx.loc[alert].reset_index(drop=True), top=explain_top)
            reasons[np.flatnonzero(alert)] = [orjson.dumps(r, default=_json_default).decode() for r in rows]
        scored = pd.DataFrame(
            {
                **{c: good[c] for c in ["transaction_id", "customer_id", "merchant_id", "terminal_id"]},
                "event_time": good["event_ts"],
                **{
                    c: good[c]
                    for c in ["currency", "amount", "payment_method", "channel", "device_type", "ip_country"]
                },
                "n_items": feats["n_items"].round().astype("int32").to_numpy(),
                "fraud_score": scores,
                "is_alert": alert,
                "model_version": str(champion.version),
                "threshold": float(champion.threshold),
                "reasons": reasons,
                **{c: good[c] for c in ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"]},
                "raw_payload": None,
                "reject_reason": None,
            }
        )
        parts.append(scored)
    if rejected.any():
        bad = pdf.loc[rejected].reset_index(drop=True)
        parts.append(
            pd.DataFrame(
                {
                    c: (
                        bad[c]
                        if c
                        in (
                            "kafka_topic",
                            "kafka_partition",
                            "kafka_offset",
                            "kafka_timestamp",
                            "raw_payload",
                            "reject_reason",
                        )
                        else None
                    )
                    for c in out_cols
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in out_cols})
    return pd.concat(parts, ignore_index=True)[out_cols]


# the batch layer's context as the JVM scorer receives it (BatchContext.of reads these columns by name)
JVM_CHARGEBACK_SCHEMA = T.StructType(
    [
        *(T.StructField(c, T.StringType()) for c in ("transaction_id", "customer_id", "terminal_id")),
        T.StructField("reported_at", T.TimestampType()),
    ]
)
JVM_BASELINE_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        *(T.StructField(c, T.DoubleType()) for c in ("n_transactions", "median_amount", "p95_amount")),
        *(T.StructField(c, T.ArrayType(T.StringType())) for c in ("usual_device_ids", "usual_countries")),
        *(T.StructField(c, T.DoubleType()) for c in ("home_lat", "home_lon")),
        T.StructField("hour_counts", T.ArrayType(T.LongType())),
        T.StructField("last_seen_at", T.TimestampType()),
    ]
)


def _string_lists(values: Any) -> list[list[str] | None]:
    return [
        [str(x) for x in v if x is not None] if isinstance(v, list | tuple | np.ndarray) else None
        for v in values
    ]


def _hour_lists(values: Any) -> list[list[int] | None]:
    return [[int(h) for h in v] if isinstance(v, list | tuple | np.ndarray) else None for v in values]


def _utc_us(values: Any) -> pa.Array:
    # Spark's timestamps are whole microseconds, as every time the stream scores is
    ts = pd.to_datetime(pd.Series(values), utc=True, errors="coerce")
    return pa.Array.from_pandas(ts).cast(pa.timestamp("us", tz="UTC"), safe=False)


def _numbers(values: Any) -> pa.Array:
    return pa.array(pd.to_numeric(pd.Series(values), errors="coerce").astype(float), pa.float64())


def jvm_context_tables(
    chargebacks: pd.DataFrame | None, baselines: pd.DataFrame | None
) -> tuple[pa.Table, pa.Table]:
    """The two context frames as Arrow tables of JVM_CHARGEBACK_SCHEMA / JVM_BASELINE_SCHEMA (handed to the
    JVM through Arrow: the context is re-sent every refresh, a row-by-row conversion would stall a batch).
    Pure."""
    cb_schema = to_arrow_schema(JVM_CHARGEBACK_SCHEMA, timezone="UTC")
    base_schema = to_arrow_schema(JVM_BASELINE_SCHEMA, timezone="UTC")
    if chargebacks is None or len(chargebacks) == 0:
        cb = cb_schema.empty_table()
    else:
        ids = {c: pa.array(chargebacks[c].astype(str).tolist(), pa.string()) for c in cb_schema.names[:3]}
        cb = pa.table({**ids, "reported_at": _utc_us(chargebacks["reported_at"])}, schema=cb_schema)
    if baselines is None or len(baselines) == 0:
        base = base_schema.empty_table()
    else:
        b = baselines
        columns = {
            "customer_id": pa.array(b["customer_id"].astype(str).tolist(), pa.string()),
            **{c: _numbers(b[c]) for c in ("n_transactions", "median_amount", "p95_amount")},
            **{
                c: pa.array(_string_lists(b[c]), pa.list_(pa.string()))
                for c in ("usual_device_ids", "usual_countries")
            },
            **{c: _numbers(b[c]) for c in ("home_lat", "home_lon")},
            "hour_counts": pa.array(_hour_lists(b["hour_counts"]), pa.list_(pa.int64())),
            "last_seen_at": _utc_us(b["last_seen_at"]),
        }
        base = pa.table(columns, schema=base_schema)
    return cb, base


def score_in_jvm(df: Any, scorer_bc: Any, context_bc: Any) -> Any:
    """The JVM's scoring (streaming/jvm SpeedJvm.scoreInContext): df (+ customer and terminal context) ->
    the same rows with the customer context filled from the baselines, the two chargeback counts,
    fraud_score, is_alert and the alerts' reasons (ml.explain's JSON), computed as `score_frame` computes
    them. `scorer_bc` / `context_bc`: ChampionCache.jvm()."""
    from pyspark.sql import DataFrame

    jvm = df.sparkSession._jvm.dev.ecomlambda.speed.SpeedJvm
    return DataFrame(jvm.scoreInContext(df._jdf, scorer_bc, context_bc), df.sparkSession)


def make_scorer(
    champion_bc, baselines_bc, chargebacks_bc
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The mapInPandas function of one batch (closes over this batch's broadcasts)."""

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        champion = champion_bc.value
        baselines = baselines_bc.value
        chargebacks = chargebacks_bc.value
        for pdf in batches:
            yield score_frame(pdf, champion, baselines, chargebacks)

    return score_batches


# ------------------------------------------------------------------------------------------ driver side
@dataclass
class Broadcasts:
    champion: Any
    baselines: Any
    chargebacks: Any
    version: str
    threshold: float


class ChampionCache:
    """Driver-side: the current champion + batch-layer context, re-checked between micro-batches."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings | None = None,
        model_name: str | None = None,
        poll_interval_s: float = 2.0,
        context_refresh_s: float = 60.0,
    ) -> None:
        self.spark = spark
        self.settings = settings or get_settings()
        self.model_name = model_name or self.settings.mlflow.model_name
        self.poll_interval_s = poll_interval_s
        self.context_refresh_s = context_refresh_s
        self._champion_bc = None
        self._version: str | None = None
        self._threshold = float("nan")
        self._checked_at = 0.0
        self._context_at = 0.0
        self._baselines_bc = None
        self._chargebacks_bc = None
        # the JVM engine's broadcasts (py4j handles), rebuilt when the champion or the context changes
        self._jvm_scorer: tuple[str | None, Any] = (None, None)
        self._jvm_context: tuple[Any, Any] = (None, None)

    def jvm(self) -> tuple[Any, Any]:
        """(scorer, context) broadcast in the JVM for `score_in_jvm`: the current champion exported by
        ml.export and the current baselines + chargebacks, each rebuilt only when it changed. Call after
        `current()`."""
        from kernel.errors import EcomError
        from ml.export import scorer_json

        jvm = self.spark._jvm.dev.ecomlambda.speed.SpeedJvm
        version, scorer = self._jvm_scorer
        if version != self._version:
            try:
                # the alert threshold deployed with the version (its registry tag), as score_frame uses
                champion = self._champion_bc.value
                artifact = scorer_json(champion.model, champion.threshold)
            except (ValueError, TypeError, AttributeError) as exc:
                raise EcomError(
                    f"{self.model_name} v{self._version} cannot be scored in the JVM ({exc}); run the stream "
                    "with --state-engine python on a new --query-name, or register a model ml.export reads"
                ) from exc
            if scorer is not None:
                scorer.unpersist()
            self._jvm_scorer = (self._version, jvm.broadcastScorer(self.spark._jsparkSession, artifact))
        key = (self._baselines_bc, self._chargebacks_bc)
        if self._jvm_context[0] != key:
            if self._jvm_context[1] is not None:
                self._jvm_context[1].unpersist()
            cb, base = jvm_context_tables(self._chargebacks_bc.value, self._baselines_bc.value)
            context = jvm.broadcastContext(
                self.spark.createDataFrame(cb, JVM_CHARGEBACK_SCHEMA)._jdf,
                self.spark.createDataFrame(base, JVM_BASELINE_SCHEMA)._jdf,
            )
            self._jvm_context = (key, context)
        return self._jvm_scorer[1], self._jvm_context[1]

    def _poll_version(self) -> str | None:
        from ml import registry

        # the stream only scores: a missing champion is an error below, never a reason to train here
        return registry.champion_version(self.settings, self.model_name)

    def current(self, force: bool = False) -> Broadcasts:
        """Broadcasts for the next batch; loads a new champion when the alias moved."""
        from ml import registry

        now = time.monotonic()
        sc = self.spark.sparkContext
        if force or self._champion_bc is None or now - self._checked_at >= self.poll_interval_s:
            try:
                version = self._poll_version()
            except Exception as exc:
                if self._champion_bc is None:
                    raise
                # the registry (MLflow) is unreachable: the champion we hold is still a champion
                log.warning(
                    "champion alias check failed (%s); scoring with v%s until the registry answers",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    self._version,
                )
                version = self._version
            self._checked_at = now
            if version is None:
                from kernel.errors import EcomError

                raise EcomError(
                    f"registered model '{self.model_name}' has no champion; train one with `ecom train` "
                    "(or `ecom up --bootstrap-model` for a first one trained on simulated data)"
                )
            if version != self._version:
                champion = registry.load_version(version, self.settings, self.model_name)
                old = self._champion_bc
                self._champion_bc = sc.broadcast(champion)
                if old is not None:
                    old.unpersist()
                log.info(
                    "%s: scoring with %s v%s (threshold %.4f)",
                    self.model_name,
                    self.model_name,
                    version,
                    champion.threshold,
                )
                self._version, self._threshold = version, float(champion.threshold)
        if force or self._baselines_bc is None or now - self._context_at >= self.context_refresh_s:
            try:
                self._refresh_context()
                self._context_at = now
            except Exception as exc:
                if self._baselines_bc is None:
                    raise  # nothing to score with yet: the first load must succeed
                # Postgres restarting or a table being rebuilt by dbt: keep scoring with the context we
                # have and try again at the next batch (never fail the query over a refresh)
                log.warning(
                    "batch-layer context refresh failed (%s); keeping the previous baselines/chargebacks "
                    "and retrying next batch",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
        return Broadcasts(
            self._champion_bc, self._baselines_bc, self._chargebacks_bc, self._version, self._threshold
        )

    def _refresh_context(self) -> None:
        from ml.data import load_baselines, load_chargebacks

        sc = self.spark.sparkContext
        baselines = load_baselines(self.settings)
        # every chargeback, whatever its date: the look-back is applied per row in event time by
        # ml.features.chargeback_context (a wall-clock bound would drop a replayed history's labels)
        chargebacks = load_chargebacks(self.settings)
        for old in (self._baselines_bc, self._chargebacks_bc):
            if old is not None:
                old.unpersist()
        self._baselines_bc = sc.broadcast(baselines)
        self._chargebacks_bc = sc.broadcast(chargebacks)
