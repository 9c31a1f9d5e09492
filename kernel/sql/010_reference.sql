-- Reference data of the shop (issue 3): the dimension sources of the batch layer.
-- Catalog, customers, merchants and terminals are STATE, not events: they are upserted by the generator
-- (`ecom generate` writes them when it starts) keyed by id, and `updated_at` moves only when a row really
-- changes, so dbt snapshots (check or timestamp strategy) can keep customers as an SCD2 history.
-- Transactions only carry the ids; dbt joins them to these tables for dim_customer / dim_product / ...
CREATE SCHEMA IF NOT EXISTS reference;

CREATE TABLE IF NOT EXISTS reference.customers (
    customer_id        text PRIMARY KEY,
    first_name         text,
    signup_at          timestamptz  NOT NULL,
    home_country       text         NOT NULL,
    home_city          text         NOT NULL,
    home_lat           double precision,
    home_lon           double precision,
    currency           char(3)      NOT NULL,
    value_tier         text         NOT NULL,   -- CRM loyalty tier: bronze / silver / gold / platinum
    preferred_payment  text,
    preferred_channel  text,
    n_devices          integer,
    favourite_category text,
    updated_at         timestamptz  NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS reference.products (
    product_id   text PRIMARY KEY,
    name         text          NOT NULL,
    category     text          NOT NULL,
    brand        text          NOT NULL,
    price        numeric(12,2) NOT NULL,   -- list price in `currency`; events carry the charged unit price
    currency     char(3)       NOT NULL,
    attributes   jsonb         NOT NULL DEFAULT '{}'::jsonb,
    updated_at   timestamptz   NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS products_category_idx ON reference.products (category);

CREATE TABLE IF NOT EXISTS reference.merchants (
    merchant_id  text PRIMARY KEY,
    name         text        NOT NULL,
    category     text        NOT NULL,   -- a product category, or department_store
    country      text        NOT NULL,
    city         text,
    has_stores   boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS reference.terminals (
    terminal_id  text PRIMARY KEY,
    merchant_id  text        NOT NULL,
    kind         text        NOT NULL,   -- web_checkout, mobile_sdk, pos
    city         text,
    country      text,
    lat          double precision,
    lon          double precision,
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS terminals_merchant_idx ON reference.terminals (merchant_id);
