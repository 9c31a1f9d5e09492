-- Payment terminals and web checkouts of each merchant.
select
    terminal_id,
    merchant_id,
    kind as terminal_kind,
    updated_at
from {{ source('reference', 'terminals') }}
