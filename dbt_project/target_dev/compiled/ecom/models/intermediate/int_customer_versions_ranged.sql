-- Each snapshot version of a customer with a closed validity range [valid_from, valid_to) and its rank.
-- The first version is stretched back to -infinity, so an event older than every version (reference data
-- loaded after historical events) resolves to the customer's first known version with the same range join.
with versions as (
    select
        dbt_scd_id as customer_sk,
        customer_id,
        dbt_valid_from,
        dbt_valid_to,
        row_number() over (partition by customer_id order by dbt_valid_from) as version_number
    from "ecom_batchdev"."snapshots"."snap_reference__customers"
)

select
    customer_sk,
    customer_id,
    case when version_number = 1 then '-infinity'::timestamptz else dbt_valid_from end as valid_from,
    coalesce(dbt_valid_to, 'infinity'::timestamptz) as valid_to,
    dbt_valid_to is null as is_current,
    version_number
from versions