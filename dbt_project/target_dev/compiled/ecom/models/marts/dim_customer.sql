
-- Customers, type 2: one row per version from the snapshot, plus one inferred member per customer that
-- the facts reference but reference.customers does not (late-arriving or unknown customers), so every
-- fact row joins.
with versions as (
    select
        v.customer_sk,
        v.customer_id,
        s.first_name,
        s.signup_at,
        s.home_country,
        s.home_city,
        s.home_lat,
        s.home_lon,
        s.currency::text as currency_code,
        s.value_tier,
        s.preferred_payment,
        s.preferred_channel,
        s.favourite_category,
        v.valid_from,
        v.valid_to,
        v.version_number,
        v.is_current,
        false as is_inferred
    from "ecom_batchdev"."intermediate"."int_customer_versions_ranged" as v
    inner join "ecom_batchdev"."snapshots"."snap_reference__customers" as s on s.dbt_scd_id = v.customer_sk
),

inferred_keys as (
    select f.customer_sk, min(f.customer_id) as customer_id
    from "ecom_batchdev"."marts"."fct_transactions" as f
    where not exists (select 1 from versions as v where v.customer_sk = f.customer_sk)
    group by f.customer_sk
),

inferred as (
    select
        f.customer_sk,
        f.customer_id,
        null::text as first_name,
        null::timestamptz as signup_at,
        null::text as home_country,
        null::text as home_city,
        null::double precision as home_lat,
        null::double precision as home_lon,
        null::text as currency_code,
        null::text as value_tier,
        null::text as preferred_payment,
        null::text as preferred_channel,
        null::text as favourite_category,
        '-infinity'::timestamptz as valid_from,
        'infinity'::timestamptz as valid_to,
        0::bigint as version_number,
        not exists (select 1 from versions as v where v.customer_id = f.customer_id) as is_current,
        true as is_inferred
    from inferred_keys as f
)

select * from versions
union all
select * from inferred