{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_sk',
        on_schema_change='sync_all_columns',
        post_hook="{{ drop_known_inferred_customers() }}",
        indexes=[{'columns': ['customer_sk'], 'unique': True}, {'columns': ['customer_id']}],
    )
}}
-- Customers, type 2: one row per version from the snapshot, plus one inferred member per customer that
-- the facts reference but reference.customers does not (late-arriving or unknown customers), so every
-- fact row joins. Once the customer becomes known its checkouts are keyed to its versions (the facts'
-- post-hook, as a full build keys them) and its inferred member is dropped (this model's post-hook).
-- Incremental: every build derives the versions (the snapshot closes and opens them) and the inferred
-- members of customers still unknown, adds inferred members only from the slice the facts gained since
-- this model's last build (macros/increments.sql), not from every fact row, and writes only the rows that
-- changed.
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
    from {{ ref('int_customer_versions_ranged') }} as v
    inner join {{ ref('snap_reference__customers') }} as s on s.dbt_scd_id = v.customer_sk
),

inferred_keys as (
    select f.customer_sk, min(f.customer_id) as customer_id
    from {{ ref('fct_transactions') }} as f
    where not exists (select 1 from versions as v where v.customer_sk = f.customer_sk)
    {% if is_incremental() %}
      and f.batch_loaded_at > {{ last_build_at('refreshed_at') }}
    {% endif %}
    group by f.customer_sk
    {% if is_incremental() %}
    union
    -- those already here, while the customer is still unknown (once known, the facts were re-keyed to its
    -- versions, macros/increments.sql rekey_known_customers, and the post-hook drops the member)
    select d.customer_sk, d.customer_id from {{ this }} as d
    where d.is_inferred and not exists (select 1 from versions as v where v.customer_id = d.customer_id)
    {% endif %}
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
),

members as (
    select * from versions
    union all
    select * from inferred
)
{% if is_incremental() %}
{#- only the rows that differ from what this table holds (a version the snapshot closed or opened, an
    inferred member that became known or is new): the rest would be deleted and inserted unchanged.
    `except` compares nulls as equal. -#}
, changed as (
    select * from members
    except
    select
        customer_sk, customer_id, first_name, signup_at, home_country, home_city, home_lat, home_lon,
        currency_code, value_tier, preferred_payment, preferred_channel, favourite_category, valid_from,
        valid_to, version_number, is_current, is_inferred
    from {{ this }}
)

select *, now() as refreshed_at from changed
{% else %}
select *, now() as refreshed_at from members
{% endif %}
