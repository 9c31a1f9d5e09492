
-- Per-minute operating figures over the last `kpi_window_hours` of event time, from the merged view.
with tx as (
    
with watermark as (
    select coalesce(max(watermark_seq), 0) as seq from "ecom_batchdev"."marts"."batch_watermark"
),

batch as (
    select
        f.transaction_id, f.customer_id, f.merchant_id, f.terminal_id, f.device_id, f.event_time,
        f.currency_code, f.amount, f.payment_method, f.channel, f.device_type, f.ip_country,
        f.n_line_items, f.landed_at, f.landed_seq, 'batch'::text as served_from
    from "ecom_batchdev"."marts"."fct_transactions" as f
    where f.landed_seq <= (select seq from watermark)
),

recent as (
    select
        t.transaction_id, t.customer_id, t.merchant_id, t.terminal_id, t.device_id, t.event_time,
        t.currency::text, t.amount, t.payment_method, t.channel, t.device_type, t.ip_country,
        jsonb_array_length(t.line_items), t.landed_at, t.landed_seq, 'realtime'::text
    from "ecom_batchdev"."master"."transactions" as t
    where t.landed_seq > (select seq from watermark) - 100000
      and not exists (
          select 1 from "ecom_batchdev"."marts"."fct_transactions" as f
          where f.transaction_id = t.transaction_id and f.landed_seq <= (select seq from watermark)
      )
),

merged as (
    select * from batch
    union all
    select * from recent
)

select
    m.transaction_id,
    m.customer_id,
    m.merchant_id,
    m.terminal_id,
    m.device_id,
    m.event_time,
    m.currency_code,
    m.amount,
    m.payment_method,
    m.channel,
    m.device_type,
    m.ip_country,
    m.n_line_items,
    s.fraud_score,
    coalesce(s.is_alert, false) as is_alert,
    s.model_version,
    s.committed_at as scored_at,
    m.served_from,
    m.landed_at,
    m.landed_seq
from merged as m
left join "ecom_batchdev"."speed"."scored_transactions" as s on s.transaction_id = m.transaction_id

)

select
    date_trunc('minute', event_time) as minute_start,
    count(*) as n_transactions,
    sum(amount) as amount_total,
    avg(amount) as amount_avg,
    count(*) filter (where fraud_score is not null) as n_scored,
    count(*) filter (where is_alert) as n_alerts,
    avg(fraud_score) as fraud_score_avg,
    count(distinct customer_id) as n_customers,
    count(*) filter (where served_from = 'realtime') as n_realtime
from tx
where event_time >= now() - make_interval(hours => 24)
group by 1