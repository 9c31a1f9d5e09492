{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='device_id',
        on_schema_change='sync_all_columns',
        indexes=[{'columns': ['device_id'], 'unique': True}],
    )
}}
-- Devices (fingerprints) seen in checkouts: their kind (most frequent), usage span and how many customers
-- used each (a device shared by many customers is a fraud signal). Incremental: a build recomputes, over
-- all their checkouts, only the devices used in the slice the facts gained since this model's last build
-- (macros/increments.sql); the others' rows are unchanged because nothing of theirs changed. `= any(array(
-- subquery))`, not `in (subquery)`: the planner cannot know the slice is small and hashes the whole fact for
-- an `in`; an array parameter gets the index on device_id (docs/batch.md, "Increments").
with usage as (
    select
        device_id,
        device_type,
        customer_id,
        count(*) as n_transactions,
        min(event_time) as first_seen_at,
        max(event_time) as last_seen_at
    from {{ ref('fct_transactions') }}
    {% if is_incremental() %}
    where device_id = any(array(
        select distinct device_id from {{ ref('fct_transactions') }}
        where batch_loaded_at > {{ last_build_at('refreshed_at') }}
    ))
    {% endif %}
    group by device_id, device_type, customer_id
)

select
    device_id,
    (array_agg(device_type order by n_transactions desc, device_type))[1] as device_type,
    sum(n_transactions)::bigint as n_transactions,
    count(distinct customer_id)::bigint as n_customers,
    min(first_seen_at) as first_seen_at,
    max(last_seen_at) as last_seen_at,
    now() as refreshed_at
from usage
group by device_id
