create or replace view "ecom_batchdev"."staging"."stg_reference__customers" as (
            -- Current customer master data (history lives in the snapshot snap_reference__customers).
select
    customer_id,
    first_name,
    signup_at,
    home_country,
    home_city,
    home_lat,
    home_lon,
    currency::text as currency_code,
    value_tier,
    preferred_payment,
    preferred_channel,
    n_devices,
    favourite_category,
    updated_at
from "ecom_batchdev"."reference"."customers"
        );