-- Products (type 1, current catalogue) plus inferred members for product ids seen only in order lines.
with reference as (
    select product_id, product_name, category, brand, list_price, currency_code, attributes, false as is_inferred
    from "ecom_batchdev"."staging"."stg_reference__products"
),

inferred as (
    select distinct o.product_id, null::text, null::text, null::text, null::numeric(14, 2), null::text,
        null::jsonb, true
    from "ecom_batchdev"."marts"."fct_order_lines" as o
    where not exists (select 1 from reference as r where r.product_id = o.product_id)
)

select * from reference
union all
select * from inferred