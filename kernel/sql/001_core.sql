-- Core platform schemas and tables in the `ecom` database. Applied by `ecom up` (kernel.db.migrate),
-- idempotent. One schema per layer; dbt owns staging / intermediate / marts / serving itself.
--   master      immutable, append-only master dataset (Lambda batch layer input)
--   speed       speed-layer output of the Spark stream (scored transactions, alerts, commit markers)
--   quarantine  events that failed parsing or the contract, with the raw payload and the reason
--   ops         pipeline metrics (per micro-batch, per benchmark run)
--   analytics   RFM, cohorts, lifetime value, recommendations (written by Dagster assets)
--   quality     Great Expectations results and the data-quality score

CREATE SCHEMA IF NOT EXISTS master;
CREATE SCHEMA IF NOT EXISTS speed;
CREATE SCHEMA IF NOT EXISTS quarantine;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE SCHEMA IF NOT EXISTS quality;

-- Every transaction event exactly once, as landed from Kafka (columns = streaming/contract/transaction.v1.json).
CREATE TABLE IF NOT EXISTS master.transactions (
    transaction_id   text PRIMARY KEY,
    schema_version   integer      NOT NULL,
    customer_id      text         NOT NULL,
    merchant_id      text         NOT NULL,
    terminal_id      text         NOT NULL,
    event_time       timestamptz  NOT NULL,
    currency         char(3)      NOT NULL,
    amount           numeric(14,2) NOT NULL,
    payment_method   text         NOT NULL,
    channel          text         NOT NULL,
    device_id        text         NOT NULL,
    device_type      text         NOT NULL,
    ip_address       text,
    ip_country       text,
    ip_city          text,
    ip_lat           double precision,
    ip_lon           double precision,
    line_items       jsonb        NOT NULL,
    kafka_topic      text         NOT NULL,
    kafka_partition  integer      NOT NULL,
    kafka_offset     bigint       NOT NULL,
    kafka_timestamp  timestamptz  NOT NULL,   -- produce time (record CreateTime)
    landed_at        timestamptz  NOT NULL DEFAULT clock_timestamp(),
    landed_seq       bigserial    NOT NULL    -- monotonically increasing landing order, for incremental dbt models
);
CREATE INDEX IF NOT EXISTS transactions_event_time_idx ON master.transactions (event_time);
CREATE INDEX IF NOT EXISTS transactions_customer_idx ON master.transactions (customer_id, event_time);
CREATE UNIQUE INDEX IF NOT EXISTS transactions_landed_seq_idx ON master.transactions (landed_seq);

-- Fraud labels (chargebacks) as they arrive, days after the transaction.
CREATE TABLE IF NOT EXISTS master.chargebacks (
    transaction_id   text PRIMARY KEY,
    schema_version   integer      NOT NULL,
    customer_id      text         NOT NULL,
    reported_at      timestamptz  NOT NULL,
    fraud_scenario   text         NOT NULL,
    amount           numeric(14,2) NOT NULL,
    kafka_topic      text         NOT NULL,
    kafka_partition  integer      NOT NULL,
    kafka_offset     bigint       NOT NULL,
    landed_at        timestamptz  NOT NULL DEFAULT clock_timestamp()
);

-- The master dataset is immutable: rows are only ever inserted.
CREATE OR REPLACE FUNCTION master.reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'master.% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'transactions_append_only') THEN
        CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON master.transactions
            FOR EACH ROW EXECUTE FUNCTION master.reject_mutation();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'chargebacks_append_only') THEN
        CREATE TRIGGER chargebacks_append_only BEFORE UPDATE OR DELETE ON master.chargebacks
            FOR EACH ROW EXECUTE FUNCTION master.reject_mutation();
    END IF;
END $$;

-- Speed layer: every transaction scored by the stream, exactly once.
CREATE TABLE IF NOT EXISTS speed.scored_transactions (
    transaction_id   text PRIMARY KEY,
    customer_id      text         NOT NULL,
    merchant_id      text         NOT NULL,
    terminal_id      text         NOT NULL,
    event_time       timestamptz  NOT NULL,
    currency         char(3)      NOT NULL,
    amount           numeric(14,2) NOT NULL,
    payment_method   text         NOT NULL,
    channel          text         NOT NULL,
    device_type      text         NOT NULL,
    ip_country       text,
    n_items          integer      NOT NULL,
    fraud_score      double precision NOT NULL,
    is_alert         boolean      NOT NULL,
    model_version    text         NOT NULL,   -- registry version of fraud_detector that scored the row
    kafka_partition  integer      NOT NULL,
    kafka_offset     bigint       NOT NULL,
    kafka_timestamp  timestamptz  NOT NULL,
    batch_id         bigint       NOT NULL,
    committed_at     timestamptz  NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS scored_event_time_idx ON speed.scored_transactions (event_time);
CREATE INDEX IF NOT EXISTS scored_committed_at_idx ON speed.scored_transactions (committed_at);

-- Alerts: scored transactions above the model's threshold, with reasons in words.
CREATE TABLE IF NOT EXISTS speed.fraud_alerts (
    transaction_id   text PRIMARY KEY REFERENCES speed.scored_transactions (transaction_id),
    customer_id      text         NOT NULL,
    event_time       timestamptz  NOT NULL,
    amount           numeric(14,2) NOT NULL,
    fraud_score      double precision NOT NULL,
    threshold        double precision NOT NULL,
    model_version    text         NOT NULL,
    reasons          jsonb        NOT NULL,   -- [{"feature", "value", "baseline", "text"}, ...] strongest first
    created_at       timestamptz  NOT NULL DEFAULT clock_timestamp()
);

-- One row per committed micro-batch per query: a replayed batch finds its marker and is a no-op.
CREATE TABLE IF NOT EXISTS speed.batch_commits (
    query_name       text         NOT NULL,
    batch_id         bigint       NOT NULL,
    rows_written     integer      NOT NULL,
    committed_at     timestamptz  NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (query_name, batch_id)
);

-- Nothing is lost: what cannot be parsed or breaks the contract lands here with the raw bytes.
CREATE TABLE IF NOT EXISTS quarantine.events (
    id               bigserial PRIMARY KEY,
    source           text         NOT NULL,   -- 'stream', 'landing', 'replay', 'producer'
    kafka_topic      text,
    kafka_partition  integer,
    kafka_offset     bigint,
    raw_payload      bytea        NOT NULL,
    raw_text         text,                    -- payload decoded as UTF-8 when it is valid UTF-8
    reason           text         NOT NULL,
    quarantined_at   timestamptz  NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_source_offset_idx
    ON quarantine.events (source, kafka_topic, kafka_partition, kafka_offset)
    WHERE kafka_offset IS NOT NULL;

-- Per micro-batch metrics of every streaming query.
CREATE TABLE IF NOT EXISTS ops.stream_batches (
    query_name       text         NOT NULL,
    batch_id         bigint       NOT NULL,
    rows_in          integer      NOT NULL,
    rows_written     integer      NOT NULL,
    rows_quarantined integer      NOT NULL DEFAULT 0,
    duration_ms      double precision NOT NULL,
    kafka_lag        bigint,
    latency_p50_ms   double precision,
    latency_p95_ms   double precision,
    latency_p99_ms   double precision,
    model_version    text,
    committed_at     timestamptz  NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (query_name, batch_id)
);

-- What the batch layer's last builds consumed: per dbt source (and the dbt project itself) the mark it had when
-- a successful build covering everything downstream of it started (orchestration/defs/dbt/changes.py). An
-- increment builds only the dbt assets downstream of the sources whose mark has moved since.
CREATE TABLE IF NOT EXISTS ops.batch_source_marks (
    source           text         PRIMARY KEY,
    mark             text         NOT NULL,
    built_at         timestamptz  NOT NULL DEFAULT clock_timestamp()
);
