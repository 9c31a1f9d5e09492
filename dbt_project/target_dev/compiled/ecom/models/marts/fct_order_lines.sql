


with candidates as (
    select t.transaction_id, t.customer_id, t.merchant_id, t.event_time, t.currency_code, t.line_items,
           t.landed_seq
    from "ecom_batchdev"."staging"."stg_master__transactions" as t
    where exists (select 1 from "ecom_batchdev"."marts"."fct_transactions" as f where f.transaction_id = t.transaction_id)
    
)

select
    c.transaction_id || ':' || li.line_number as order_line_id,
    c.transaction_id,
    li.line_number::integer as line_number,
    li.item ->> 'product_id' as product_id,
    c.customer_id,
    c.merchant_id,
    (to_char(c.event_time at time zone 'UTC', 'YYYYMMDD'))::integer as date_key,
    c.event_time,
    c.currency_code,
    (li.item ->> 'quantity')::integer as quantity,
    (li.item ->> 'unit_price')::numeric(14, 2) as unit_price,
    ((li.item ->> 'quantity')::integer * (li.item ->> 'unit_price')::numeric(14, 2))::numeric(14, 2) as line_amount,
    c.landed_seq
from candidates as c
cross join lateral jsonb_array_elements(c.line_items) with ordinality as li (item, line_number)