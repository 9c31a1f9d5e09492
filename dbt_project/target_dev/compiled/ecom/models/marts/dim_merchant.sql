-- Merchants (type 1, current attributes) plus inferred members for merchant ids seen only in the facts.
with reference as (
    select merchant_id, merchant_name, merchant_category, merchant_country, merchant_city, has_stores,
        false as is_inferred
    from "ecom_batchdev"."staging"."stg_reference__merchants"
),

inferred as (
    select distinct f.merchant_id, null::text, null::text, null::text, null::text, null::boolean, true
    from "ecom_batchdev"."marts"."fct_transactions" as f
    where not exists (select 1 from reference as r where r.merchant_id = f.merchant_id)
)

select * from reference
union all
select * from inferred