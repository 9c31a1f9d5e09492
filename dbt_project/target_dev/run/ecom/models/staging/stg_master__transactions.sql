create or replace view "ecom_batchdev"."staging"."stg_master__transactions" as (
            -- One row per landed transaction: contract columns renamed/cast, Kafka position kept for lineage.
select
    transaction_id,
    schema_version,
    customer_id,
    merchant_id,
    terminal_id,
    event_time,
    currency::text as currency_code,
    amount::numeric(14, 2) as amount,
    payment_method,
    channel,
    device_id,
    device_type,
    ip_address,
    ip_country,
    ip_city,
    ip_lat,
    ip_lon,
    line_items,
    jsonb_array_length(line_items) as n_line_items,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    kafka_timestamp,
    landed_at,
    landed_seq
from "ecom_batchdev"."master"."transactions"
        );