-- Each snapshot version of a customer with a closed validity range and its rank among the customer's
-- versions, so facts can pick the version valid at event time (or the first one, when the event predates
-- every version, e.g. reference data loaded after historical events).
select
    dbt_scd_id as customer_sk,
    customer_id,
    dbt_valid_from as valid_from,
    coalesce(dbt_valid_to, 'infinity'::timestamptz) as valid_to,
    dbt_valid_to is null as is_current,
    row_number() over (partition by customer_id order by dbt_valid_from) as version_number
from {{ ref('snap_reference__customers') }}
