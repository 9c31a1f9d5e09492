{{
    config(
        materialized='table',
        indexes=[{'columns': ['customer_id']}, {'columns': ['customer_sk'], 'unique': True}],
    )
}}
-- Each snapshot version of a customer with a closed validity range [valid_from, valid_to) and its rank.
-- The first version is stretched back to -infinity, so an event older than every version (reference data
-- loaded after historical events) resolves to the customer's first known version with the same range join.
-- A table with an index on customer_id, not a view: fct_transactions range-joins each new checkout to it, and
-- when the planner thinks the slice is one row (statistics from before the append) it picks a nested loop;
-- over a view that loop re-sorted every version per checkout (a +1k over 5M took minutes), over this table
-- it is an index lookup per checkout. Rebuilt every build (one row per customer version, not per checkout).
with versions as (
    select
        dbt_scd_id as customer_sk,
        customer_id,
        dbt_valid_from,
        dbt_valid_to,
        row_number() over (partition by customer_id order by dbt_valid_from) as version_number
    from {{ ref('snap_reference__customers') }}
)

select
    customer_sk,
    customer_id,
    case when version_number = 1 then '-infinity'::timestamptz else dbt_valid_from end as valid_from,
    coalesce(dbt_valid_to, 'infinity'::timestamptz) as valid_to,
    dbt_valid_to is null as is_current,
    version_number
from versions
