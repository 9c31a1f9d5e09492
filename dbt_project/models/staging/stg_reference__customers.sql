-- Current customer master data (history lives in the snapshot snap_reference__customers).
select
    customer_id,
    signup_at,
    home_country,
    home_city,
    home_lat,
    home_lon,
    updated_at
from {{ source('reference', 'customers') }}
