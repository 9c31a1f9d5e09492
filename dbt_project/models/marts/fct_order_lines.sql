{#
  One row per line item of a checkout (grain: transaction x line number). Incremental on the slice of
  fct_transactions added since this model's last build (batch_loaded_at later than the latest here), so
  every line has its parent fact and each parent's lines are added once: a transaction enters
  fct_transactions once (unique), and its lines with the first build of this model that sees it. No
  look-back is needed here; fct_transactions already caught the late commits. The customer's SCD2 version
  is reached through the parent (fct_transactions.customer_sk). A backfill of an event day
  (var backfill_day) deletes that day's lines first; the parents derived again carry a new stamp, so their
  lines are derived again with them.
  Indexes: one unique index on (transaction_id, line_number) both refuses a second copy of a line
  (order_line_id is those two joined by ':', one-to-one: line_number has no ':') and serves lookups by
  transaction; batch_loaded_at is what the models downstream read a slice by. Nothing reads order lines by
  order_line_id or landed_seq, so neither has an index (each cost ~2 s of a full build over 1M).
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='sync_all_columns',
        pre_hook="{{ delete_backfill_day('event_time') }}",
        indexes=[
            {'columns': ['transaction_id', 'line_number'], 'unique': True},
            {'columns': ['batch_loaded_at']},
        ],
    )
}}

with candidates as (
    select t.transaction_id, t.customer_id, t.merchant_id, t.event_time, t.currency_code, t.line_items,
           t.landed_seq
    from {{ ref('stg_master__transactions') }} as t
    inner join {{ ref('fct_transactions') }} as f on f.transaction_id = t.transaction_id
    {% if is_incremental() %}
    where f.batch_loaded_at > {{ last_build_at('batch_loaded_at') }}
    {% endif %}
)

select
    c.transaction_id || ':' || li.line_number as order_line_id,
    c.transaction_id,
    li.line_number::integer as line_number,
    li.item ->> 'product_id' as product_id,
    c.customer_id,
    c.merchant_id,
    {{ date_key('c.event_time') }} as date_key,
    c.event_time,
    c.currency_code,
    (li.item ->> 'quantity')::integer as quantity,
    (li.item ->> 'unit_price')::numeric(14, 2) as unit_price,
    ((li.item ->> 'quantity')::integer * (li.item ->> 'unit_price')::numeric(14, 2))::numeric(14, 2) as line_amount,
    c.landed_seq,
    now() as batch_loaded_at
from candidates as c
cross join lateral jsonb_array_elements(c.line_items) with ordinality as li (item, line_number)
