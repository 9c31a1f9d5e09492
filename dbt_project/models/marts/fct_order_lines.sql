{#
  One row per line item of a checkout (grain: transaction x line number). Incremental like fct_transactions
  and fed only from transactions already in fct_transactions, so every line has its parent fact.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[
            {'columns': ['order_line_id'], 'unique': True},
            {'columns': ['transaction_id']},
            {'columns': ['product_id']},
            {'columns': ['landed_seq']},
        ],
    )
}}

with new_transactions as (
    select f.transaction_id, f.customer_sk, f.customer_id, f.merchant_id, f.date_key, f.event_time,
           f.currency_code, f.landed_seq
    from {{ ref('fct_transactions') }} as f
    {% if is_incremental() %}
    where f.landed_seq > (select coalesce(max(landed_seq), 0) from {{ this }}) - {{ var('late_landing_lookback') }}
      and not exists (select 1 from {{ this }} as o where o.transaction_id = f.transaction_id)
    {% endif %}
)

select
    n.transaction_id || ':' || li.line_number as order_line_id,
    n.transaction_id,
    li.line_number::integer as line_number,
    li.item ->> 'product_id' as product_id,
    n.customer_sk,
    n.customer_id,
    n.merchant_id,
    n.date_key,
    n.event_time,
    n.currency_code,
    (li.item ->> 'quantity')::integer as quantity,
    (li.item ->> 'unit_price')::numeric(14, 2) as unit_price,
    ((li.item ->> 'quantity')::integer * (li.item ->> 'unit_price')::numeric(14, 2))::numeric(14, 2) as line_amount,
    n.landed_seq
from new_transactions as n
inner join {{ ref('stg_master__transactions') }} as t on t.transaction_id = n.transaction_id
cross join lateral jsonb_array_elements(t.line_items) with ordinality as li (item, line_number)
