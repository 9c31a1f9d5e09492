"""Pure DataFrame -> DataFrame steps of the speed layer and the batch landing.

Each works on a streaming or a static DataFrame alike, so the tests run them on static frames built from
bytes. Parsing and the contract checks run inside the JVM (from_json + the contract's Spark rules): no
Python round trip per event just to validate it. The only inputs besides the frame are two settings read
when the plan is built (the Kafka fetch wait, the event-time tolerance ahead of Kafka).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from events.contract import NUL_REASON, field_names, spark_rejection_reason, spark_schema

KAFKA_COLUMNS = ["raw_payload", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"]


def read_kafka(
    spark: SparkSession,
    topic: str,
    bootstrap_servers: str,
    max_offsets_per_trigger: int | None = None,
    starting_offsets: str = "earliest",
    fetch_max_wait_ms: int | None = None,
    assign: str | None = None,
) -> DataFrame:
    """The Kafka source (a new checkpoint starts at `starting_offsets`; an existing one resumes).

    `assign` (Kafka's JSON `{"topic": [partitions]}`) reads only those partitions of `topic`.

    `fetch_max_wait_ms` (default: settings) bounds how long the broker holds a fetch that finds no data:
    each task's last fetch reaches the log end, and Kafka's default 500 ms was a fixed cost of every
    task of every micro-batch.
    """
    if fetch_max_wait_ms is None:
        from kernel.settings import get_settings

        fetch_max_wait_ms = get_settings().kafka.fetch_max_wait_ms
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option(*(("assign", assign) if assign else ("subscribe", topic)))
        .option("startingOffsets", starting_offsets)
        # a deleted/compacted offset range must fail loudly: silently skipping would lose events
        .option("failOnDataLoss", "true")
        .option("kafka.fetch.max.wait.ms", str(fetch_max_wait_ms))
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def kafka_envelope(df: DataFrame) -> DataFrame:
    """Kafka record -> the payload bytes and where it came from (topic/partition/offset/produce time)."""
    return df.select(
        F.col("value").alias("raw_payload"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    )


def _payload_reason(payload_text: Column, raw: Column, name: str) -> Column:
    """Why a payload is not even a candidate event (NULL when it is a JSON object with known fields)."""
    keys = F.json_object_keys(payload_text)
    unknown = F.array_except(keys, F.array(*[F.lit(f) for f in field_names(name)]))
    return (
        F.when(raw.isNull() | (F.length(raw) == 0), F.lit("empty payload"))
        .when(~F.is_valid_utf8(payload_text), F.lit("payload is not valid UTF-8"))
        .when(keys.isNull(), F.lit("payload is not a JSON object"))
        # a \u0000 escape (not an escaped backslash followed by "u0000"): Postgres text cannot store NUL,
        # so such an event would fail its batch's transaction on every retry; the substring test is the
        # cheap guard, the regex the exact one
        .when(
            (F.instr(payload_text, "\\u0000") > 0) & payload_text.rlike(r"(^|[^\\])(\\\\)*\\u0000"),
            F.lit(f"a string {NUL_REASON}"),
        )
        .when(
            F.size(unknown) > 0,
            F.concat(F.lit("unknown field(s) not in the contract: "), F.array_join(unknown, ", ")),
        )
    )


def parse_events(df: DataFrame, name: str = "transaction") -> DataFrame:
    """Envelope -> envelope + `event` struct (contract schema) + `reject_reason` (NULL when valid).

    Invalid UTF-8, non-JSON, unknown fields, wrong types, missing fields and broken rules all end up as a
    reason string instead of an exception, so one bad event never stops the query.
    """
    text = F.col("raw_payload").cast("string")
    reason = _payload_reason(text, F.col("raw_payload"), name)
    return (
        df.withColumn("_payload_text", F.when(F.is_valid_utf8(text), text))
        .withColumn("event", F.from_json(F.col("_payload_text"), spark_schema(name)))
        .withColumn(
            "reject_reason",
            F.coalesce(reason, spark_rejection_reason("event", name, raw_text_col="_payload_text")),
        )
        .drop("_payload_text")
    )


def flatten_transactions(df: DataFrame, keep: list[str] | None = None) -> DataFrame:
    """Parsed transactions -> one column per contract field (line_items as JSON text, event_ts parsed).

    Rejected rows keep their envelope and reason with NULL fields, so they can travel with the valid ones
    through the same query (one Kafka read) and split at the sink. `keep`: more columns of `df` to carry.
    """
    fields = [F.col(f"event.{f}").alias(f) for f in field_names("transaction") if f != "line_items"]
    event_ts = F.try_to_timestamp(F.col("event.event_time"))
    return df.select(
        *KAFKA_COLUMNS,
        F.coalesce(F.col("reject_reason"), _ahead_of_kafka_reason(event_ts)).alias("reject_reason"),
        *fields,
        F.to_json(F.col("event.line_items")).alias("line_items"),
        event_ts.alias("event_ts"),
        *(keep or []),
    )


def _ahead_of_kafka_reason(event_ts: Column) -> Column:
    """A reason when the event claims a time more than `max_event_ahead_hours` after Kafka received it."""
    from kernel.settings import get_settings

    hours = get_settings().spark.max_event_ahead_hours
    if hours <= 0:
        return F.lit(None).cast("string")
    limit = F.col("kafka_timestamp") + F.make_interval(secs=F.lit(hours * 3600.0))
    return F.when(
        event_ts > limit,
        F.lit(
            f"event_time: more than {hours:g} hours after Kafka received the event (a producer clock is wrong)"
        ),
    )


def flatten_chargebacks(df: DataFrame) -> DataFrame:
    """Parsed chargebacks -> one column per contract field (reported_ts parsed)."""
    fields = [F.col(f"event.{f}").alias(f) for f in field_names("chargeback")]
    return df.select(
        *KAFKA_COLUMNS,
        "reject_reason",
        *fields,
        F.try_to_timestamp(F.col("event.reported_at")).alias("reported_ts"),
    )


# what the speed layer's keyed state, scoring and sink read of an event (the rest stays in the master
# dataset): ip_address/ip_city/schema_version are never used, and line_items is reduced to its item count
# in the JVM, so the wide JSON text does not cross into Python three times per event
SPEED_DROPPED = ["schema_version", "ip_address", "ip_city", "line_items"]


def n_items(line_items: Column) -> Column:
    """Units bought (sum of quantity; 1 for a missing or empty list): `ml.features._n_items` in the JVM."""
    total = F.aggregate(
        line_items, F.lit(0).cast("long"), lambda acc, it: acc + F.coalesce(it["quantity"], F.lit(1))
    )
    return F.when(F.coalesce(F.size(line_items), F.lit(0)) <= 0, F.lit(1.0)).otherwise(total.cast("double"))


def speed_transactions(kafka_df: DataFrame) -> DataFrame:
    """Kafka records -> flat, validated rows with only the columns the speed layer reads (`n_items`
    instead of `line_items`). The landing keeps every field (`parse_transactions`)."""
    parsed = parse_events(kafka_envelope(kafka_df), "transaction")
    return flatten_transactions(
        parsed.withColumn("n_items", n_items(F.col("event.line_items"))), ["n_items"]
    ).drop(*SPEED_DROPPED)


def parse_transactions(kafka_df: DataFrame) -> DataFrame:
    """Kafka records of the transactions topic -> flat, validated rows (the first step of both queries)."""
    return flatten_transactions(parse_events(kafka_envelope(kafka_df), "transaction"))


def parse_chargebacks(kafka_df: DataFrame) -> DataFrame:
    return flatten_chargebacks(parse_events(kafka_envelope(kafka_df), "chargeback"))


def with_event_watermark(df: DataFrame, delay: str) -> DataFrame:
    """Event-time watermark. Rejected rows count with their produce time: they neither hold the watermark
    back nor move it (a quarantined far-future event_time must not make the state forget everyone)."""
    event_time = F.when(F.col("reject_reason").isNull(), F.col("event_ts"))
    return df.withColumn("watermark_ts", F.coalesce(event_time, F.col("kafka_timestamp"))).withWatermark(
        "watermark_ts", delay
    )
