-- Devices (fingerprints) seen in checkouts: their kind (most frequent), usage span and how many customers
-- used each (a device shared by many customers is a fraud signal).
with usage as (
    select
        device_id,
        device_type,
        count(*) as n_transactions,
        min(event_time) as first_seen_at,
        max(event_time) as last_seen_at
    from {{ ref('fct_transactions') }}
    group by device_id, device_type
),

customers as (
    select device_id, count(distinct customer_id) as n_customers
    from {{ ref('fct_transactions') }}
    group by device_id
)

select
    u.device_id,
    (array_agg(u.device_type order by u.n_transactions desc, u.device_type))[1] as device_type,
    sum(u.n_transactions)::bigint as n_transactions,
    max(c.n_customers)::bigint as n_customers,
    min(u.first_seen_at) as first_seen_at,
    max(u.last_seen_at) as last_seen_at
from usage as u
inner join customers as c on c.device_id = u.device_id
group by u.device_id
