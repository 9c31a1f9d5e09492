-- Payment terminals and web checkouts of each merchant.
select
    terminal_id,
    merchant_id,
    kind as terminal_kind,
    city as terminal_city,
    country as terminal_country,
    lat as terminal_lat,
    lon as terminal_lon,
    updated_at
from "ecom_batchdev"."reference"."terminals"