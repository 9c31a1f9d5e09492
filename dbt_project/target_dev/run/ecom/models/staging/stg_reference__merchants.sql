create or replace view "ecom_batchdev"."staging"."stg_reference__merchants" as (
            -- Merchants (sellers / stores).
select
    merchant_id,
    name as merchant_name,
    category as merchant_category,
    country as merchant_country,
    city as merchant_city,
    has_stores,
    updated_at
from "ecom_batchdev"."reference"."merchants"
        );