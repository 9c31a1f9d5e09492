{#
  The Lambda merge, shared by every serving view. Like every model above staging it reads models only
  (`ref`): the staging views of the master dataset and the speed layer, the incremental fact and the
  watermark log. None of them is dropped by a batch refresh (staging views are `stable_view`s, the fact
  and the log are incremental), so a reader always sees every landed transaction exactly once:

    batch   fct_transactions rows with landed_seq <= W  (W = latest marts.batch_watermark)
    recent  stg_master__transactions rows after the batch view: landed_seq > W - lookback (late commits)
            and not already in the batch part

  Both halves are evaluated in one statement, hence one MVCC snapshot (the staging view is inlined by the
  planner, so it reads master.transactions in the same snapshot), and a batch build running at the same
  time (appending to fct_transactions, then writing a new watermark) never makes a row appear twice or
  vanish. The fraud score comes from the speed layer (stg_speed__scored_transactions), joined live so a
  score committed after the batch build is served too.
#}
{% macro serving_transactions_sql() %}
with watermark as (
    select coalesce(max(watermark_seq), 0) as seq from {{ ref('batch_watermark') }}
),

batch as (
    select
        f.transaction_id, f.customer_id, f.merchant_id, f.terminal_id, f.device_id, f.event_time,
        f.currency_code, f.amount, f.payment_method, f.channel, f.device_type, f.ip_country,
        f.n_line_items, f.landed_at, f.landed_seq, 'batch'::text as served_from
    from {{ ref('fct_transactions') }} as f
    where f.landed_seq <= (select seq from watermark)
),

recent as (
    select
        t.transaction_id, t.customer_id, t.merchant_id, t.terminal_id, t.device_id, t.event_time,
        t.currency_code, t.amount, t.payment_method, t.channel, t.device_type, t.ip_country,
        t.n_line_items, t.landed_at, t.landed_seq, 'realtime'::text
    from {{ ref('stg_master__transactions') }} as t
    where t.landed_seq > (select seq from watermark) - {{ var('late_landing_lookback') }}
      and not exists (
          -- a fact row has its master row's landed_seq, so only the window's facts can match: without the
          -- lower bound the anti-join hashed the whole fact (1.3M rows: ~0.95 s of every read at 1M)
          select 1 from {{ ref('fct_transactions') }} as f
          where f.transaction_id = t.transaction_id
            and f.landed_seq > (select seq from watermark) - {{ var('late_landing_lookback') }}
            and f.landed_seq <= (select seq from watermark)
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
    s.scored_at,
    m.served_from,
    m.landed_at,
    m.landed_seq
from merged as m
left join {{ ref('stg_speed__scored_transactions') }} as s on s.transaction_id = m.transaction_id
{% endmacro %}
