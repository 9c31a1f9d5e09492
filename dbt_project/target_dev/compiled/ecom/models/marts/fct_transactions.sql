


with landed as (
    select t.*
    from "ecom_batchdev"."staging"."stg_master__transactions" as t
    
),

versions as (
    select customer_sk, customer_id, valid_from, valid_to from "ecom_batchdev"."intermediate"."int_customer_versions_ranged"
),

scores as (
    select * from "ecom_batchdev"."staging"."stg_speed__scored_transactions"
)

select
    l.transaction_id,
    coalesce(v.customer_sk, md5(l.customer_id || '~inferred')) as customer_sk,
    l.customer_id,
    l.merchant_id,
    l.terminal_id,
    l.device_id,
    (to_char(l.event_time at time zone 'UTC', 'YYYYMMDD'))::integer as date_key,
    l.payment_method,
    l.channel,
    l.device_type,
    l.event_time,
    l.currency_code,
    l.amount,
    l.n_line_items,
    l.ip_address,
    l.ip_country,
    l.ip_city,
    l.ip_lat,
    l.ip_lon,
    s.fraud_score,
    s.is_alert,
    s.model_version,
    s.scored_at,
    l.kafka_topic,
    l.kafka_partition,
    l.kafka_offset,
    l.landed_at,
    l.landed_seq
from landed as l
-- the validity ranges of one customer never overlap and start at -infinity: at most one version matches
left join versions as v
    on v.customer_id = l.customer_id
    and l.event_time >= v.valid_from
    and l.event_time < v.valid_to
left join scores as s on s.transaction_id = l.transaction_id