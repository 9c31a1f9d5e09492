-- Least-privilege login roles of the platform's components (the dashboards' read-only role is 070). Each is
-- created NOLOGIN here; kernel.db.migrate() then gives it LOGIN with its password from kernel/settings.py
-- (ECOM_<COMPONENT>_PG_PASSWORD, else a random local secret under .local/secrets/). The owner
-- (ECOM_PG_USER) keeps the migrations, the launcher and the Dagster assets.
--   ecom_stream   the speed layer's sink: appends scored rows, alerts, quarantined events, its batch
--                 markers and metrics; reads the labels it scores with; nothing else
--   ecom_landing  the batch landing: appends to the master dataset (transactions, chargebacks), quarantine,
--                 its batch markers and metrics; nothing else
--   ecom_dbt      the batch layer's dbt: reads every platform schema, may create the schemas it builds (staging,
--                 intermediate, marts, serving, snapshots); cannot write the master dataset or the speed layer
-- None may update or delete: the master dataset is append-only for everyone (a trigger, 001), and these roles
-- lack the privilege besides. New tables a later migration adds are granted there, table by table.
-- Idempotent: applied by kernel.db.migrate() on every `ecom up`.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ecom_stream', 'ecom_landing', 'ecom_dbt'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format(
                    'CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r
                );
            EXCEPTION WHEN duplicate_object THEN
                NULL;  -- roles are cluster-wide: a migration of another database created it meanwhile
            END;
        END IF;
    END LOOP;
END
$$;

-- the stream writer --------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA speed, quarantine, ops, master TO ecom_stream;
GRANT SELECT, INSERT ON speed.scored_transactions, speed.fraud_alerts, speed.batch_commits TO ecom_stream;
GRANT SELECT, INSERT ON quarantine.events, ops.stream_batches TO ecom_stream;
GRANT USAGE ON SEQUENCE quarantine.events_id_seq TO ecom_stream;
GRANT SELECT ON master.chargebacks TO ecom_stream;  -- the labels the scorer's context reads

-- the landing writer -------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA master, quarantine, speed, ops TO ecom_landing;
GRANT SELECT, INSERT ON master.transactions, master.chargebacks TO ecom_landing;
GRANT SELECT, INSERT ON quarantine.events, speed.batch_commits, ops.stream_batches TO ecom_landing;
GRANT USAGE ON SEQUENCE master.transactions_landed_seq_seq, quarantine.events_id_seq TO ecom_landing;

-- dbt ----------------------------------------------------------------------------------------------------
-- reads every platform schema that exists now (dbt's own ones it owns, below)
DO $$
DECLARE
    s text;
BEGIN
    FOR s IN
        SELECT nspname FROM pg_namespace
        WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('information_schema', 'public')
          AND nspname NOT IN ('staging', 'intermediate', 'marts', 'serving', 'snapshots')
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO ecom_dbt', s);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO ecom_dbt', s);
    END LOOP;
END
$$;
-- creates its schemas in this database (and nowhere else: no CREATE on public, no other database)
DO $$
BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO ecom_dbt', current_database());
END
$$;
-- what dbt builds stays readable by the dashboards' read-only role, whoever of the owner and ecom_dbt builds it
ALTER DEFAULT PRIVILEGES FOR ROLE ecom_dbt GRANT USAGE ON SCHEMAS TO ecom_dashboards;
ALTER DEFAULT PRIVILEGES FOR ROLE ecom_dbt GRANT SELECT ON TABLES TO ecom_dashboards;
