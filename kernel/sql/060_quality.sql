-- Data-quality results (Great Expectations 1.x suites in expectations/), for the dashboards and the score.
-- Written by expectations.results.store_results() from `ecom quality` and the Dagster asset checks.
-- Idempotent: applied by kernel.db.migrate() on every `ecom up`.

CREATE SCHEMA IF NOT EXISTS quality;

-- One row per expectation per suite run. `weight` is the severity weight at the time of the run
-- (expectations.results.SEVERITY_WEIGHTS), stored so the score views never restate the weights.
CREATE TABLE IF NOT EXISTS quality.expectation_results (
    id               bigserial    PRIMARY KEY,
    run_id           text         NOT NULL,   -- one `ecom quality` run or one Dagster run
    suite            text         NOT NULL,   -- e.g. master_transactions
    data_asset       text         NOT NULL,   -- the relation validated, e.g. master.transactions
    expectation      text         NOT NULL,   -- GX expectation type, e.g. expect_column_values_to_be_unique
    expectation_id   text,                    -- GX expectation id (stable within a suite definition)
    description      text,                    -- what the expectation means, in words
    "column"         text,                    -- NULL for table-level expectations
    severity         text         NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    weight           double precision NOT NULL CHECK (weight >= 0),
    success          boolean      NOT NULL,
    observed_value   jsonb,                   -- GX observed value or unexpected count
    details          jsonb,                   -- unexpected counts / sample values / exception message
    trigger          text         NOT NULL DEFAULT 'cli',  -- cli | dagster | test
    run_at           timestamptz  NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS expectation_results_run_idx ON quality.expectation_results (run_id);
CREATE INDEX IF NOT EXISTS expectation_results_run_at_idx ON quality.expectation_results (run_at);
CREATE INDEX IF NOT EXISTS expectation_results_suite_idx ON quality.expectation_results (suite, run_at);

-- Score of each run: share of expectations passed, weighted by severity (1.0 = everything passed).
-- *_all views include the test suite's runs (trigger = 'test', on throwaway schemas); the dashboards read
-- quality.scores / quality.suite_scores, which leave them out.
CREATE OR REPLACE VIEW quality.scores_all AS
SELECT
    run_id,
    trigger,
    min(run_at)                                                         AS run_at,
    count(*)                                                            AS expectations,
    count(*) FILTER (WHERE NOT success)                                 AS failed,
    count(*) FILTER (WHERE NOT success AND severity = 'critical')       AS failed_critical,
    count(DISTINCT suite)                                               AS suites,
    CASE WHEN sum(weight) > 0
         THEN coalesce(sum(weight) FILTER (WHERE success), 0) / sum(weight) END     AS score
FROM quality.expectation_results
GROUP BY run_id, trigger;

-- The same score per suite and run, for the per-layer panels.
CREATE OR REPLACE VIEW quality.suite_scores_all AS
SELECT
    run_id,
    trigger,
    suite,
    min(run_at)                                                         AS run_at,
    count(*)                                                            AS expectations,
    count(*) FILTER (WHERE NOT success)                                 AS failed,
    count(*) FILTER (WHERE NOT success AND severity = 'critical')       AS failed_critical,
    bool_and(success OR severity <> 'critical')                         AS passed_blocking,
    CASE WHEN sum(weight) > 0
         THEN coalesce(sum(weight) FILTER (WHERE success), 0) / sum(weight) END     AS score
FROM quality.expectation_results
GROUP BY run_id, trigger, suite;

CREATE OR REPLACE VIEW quality.scores AS
SELECT * FROM quality.scores_all WHERE trigger <> 'test';

CREATE OR REPLACE VIEW quality.suite_scores AS
SELECT * FROM quality.suite_scores_all WHERE trigger <> 'test';
