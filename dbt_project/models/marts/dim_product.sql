{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='product_id',
        on_schema_change='sync_all_columns',
        indexes=[{'columns': ['product_id'], 'unique': True}],
    )
}}
-- Products (type 1, current catalogue) plus inferred members for product ids seen only in order lines.
-- Incremental like dim_merchant: reference rows rewritten every build, inferred members only from the
-- order lines added since this model's last build (macros/increments.sql).
with reference as (
    select product_id, product_name, category, brand, list_price, currency_code, attributes, false as is_inferred
    from {{ ref('stg_reference__products') }}
),

inferred as (
    select distinct o.product_id, null::text, null::text, null::text, null::numeric(14, 2), null::text,
        null::jsonb, true
    from {{ ref('fct_order_lines') }} as o
    where not exists (select 1 from reference as r where r.product_id = o.product_id)
    {% if is_incremental() %}
      and o.batch_loaded_at > {{ last_build_at('refreshed_at') }}
    {% endif %}
),

members as (
    select * from reference
    union all
    select * from inferred
)

select *, now() as refreshed_at from members
