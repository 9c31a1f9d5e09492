-- The read-only role the dashboards connect as (`ecom dashboards serve`, dashboards/app.py): it can read every
-- table and view of the platform database and write nothing. Created without a password (NOLOGIN); `ecom up`
-- (stack/services.py, Postgres.after_healthy) gives it LOGIN with the password from kernel/settings.py
-- (ECOM_DASHBOARDS_PG_PASSWORD, else a random local secret under .local/secrets/).
-- Idempotent: applied by kernel.db.migrate() on every `ecom up`.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecom_dashboards') THEN
        CREATE ROLE ecom_dashboards NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- roles are cluster-wide: a migration of another database created it meanwhile
END
$$;

-- every session of the role is read-only, whatever the client asks for (a second wall besides GRANTs)
ALTER ROLE ecom_dashboards SET default_transaction_read_only = on;

-- what exists now (dbt's marts/serving schemas appear after the first batch: the defaults below cover them)
DO $$
DECLARE
    s text;
BEGIN
    FOR s IN
        SELECT nspname FROM pg_namespace
        WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO ecom_dashboards', s);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO ecom_dashboards', s);
    END LOOP;
END
$$;

-- what the platform user creates later (dbt rebuilds tables and views at every batch): readable, nothing more
ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO ecom_dashboards;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO ecom_dashboards;
