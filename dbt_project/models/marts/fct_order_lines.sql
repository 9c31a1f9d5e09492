{#
  One row per line item of a checkout (grain: transaction x line number). Incremental like fct_transactions,
  and only for transactions already in fct_transactions (semi-join), so every line has its parent fact;
  the customer's SCD2 version is reached through the parent (fct_transactions.customer_sk).
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='sync_all_columns',
        indexes=[
            {'columns': ['order_line_id'], 'unique': True},
            {'columns': ['transaction_id']},
            {'columns': ['landed_seq']},
        ],
    )
}}

with candidates as (
    select t.transaction_id, t.customer_id, t.merchant_id, t.event_time, t.currency_code, t.line_items,
           t.landed_seq
    from {{ ref('stg_master__transactions') }} as t
    where exists (select 1 from {{ ref('fct_transactions') }} as f where f.transaction_id = t.transaction_id)
    {% if is_incremental() %}
      and t.landed_seq > (select coalesce(max(landed_seq), 0) from {{ this }}) - {{ var('late_landing_lookback') }}
      and not exists (select 1 from {{ this }} as o where o.transaction_id = t.transaction_id)
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
    c.landed_seq
from candidates as c
cross join lateral jsonb_array_elements(c.line_items) with ordinality as li (item, line_number)
