create or replace view "ecom_batchdev"."staging"."stg_reference__products" as (
            -- Product catalogue.
select
    product_id,
    name as product_name,
    category,
    brand,
    price::numeric(14, 2) as list_price,
    currency::text as currency_code,
    attributes,
    updated_at
from "ecom_batchdev"."reference"."products"
        );