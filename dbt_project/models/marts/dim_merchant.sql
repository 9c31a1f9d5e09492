{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='merchant_id',
        on_schema_change='sync_all_columns',
        indexes=[{'columns': ['merchant_id'], 'unique': True}],
    )
}}
-- Merchants (type 1, current attributes) plus inferred members for merchant ids seen only in the facts.
-- Incremental: every build rewrites the reference rows (small; a reference row replaces an inferred member
-- once the merchant becomes known) and adds inferred members only from the slice the facts gained since
-- this model's last build (macros/increments.sql), not from every fact row.
with reference as (
    select merchant_id, merchant_name, merchant_category, merchant_country, merchant_city, has_stores,
        false as is_inferred
    from {{ ref('stg_reference__merchants') }}
),

inferred as (
    select distinct f.merchant_id, null::text, null::text, null::text, null::text, null::boolean, true
    from {{ ref('fct_transactions') }} as f
    where not exists (select 1 from reference as r where r.merchant_id = f.merchant_id)
    {% if is_incremental() %}
      and f.batch_loaded_at > {{ last_build_at('refreshed_at') }}
    {% endif %}
),

members as (
    select * from reference
    union all
    select * from inferred
)

select *, now() as refreshed_at from members
