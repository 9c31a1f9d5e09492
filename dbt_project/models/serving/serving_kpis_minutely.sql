{{ config(alias='kpis_minutely') }}
-- Per-minute operating figures over the last `kpi_window_hours` of event time, from the merged view.
with tx as (
    {{ serving_transactions_sql() }}
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
where event_time >= now() - make_interval(hours => {{ var('kpi_window_hours', 24) }})
group by 1
