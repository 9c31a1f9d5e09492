{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_id',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_id'], 'unique': True}],
    )
}}
{#
  Each customer's habits as ml/features.py's CustomerState holds them after walking every transaction of the
  batch view: `ml.features.customer_baselines(state)` in SQL, column for column (same names, same numbers;
  tests/orchestration/test_customer_baselines.py runs this model and compares). The speed layer reads it
  for its cold-start fill (`ml.features.fill_from_baselines`).

  The walk's order is (event_time, transaction_id) with ids compared by code point: `collate "C"`.
  Amounts are integer cents as in the walk. The constants are ml.features' AMOUNT_HISTORY, DEVICE_MEMORY and
  COUNTRY_MEMORY.

  Incremental (delete+insert on customer_id): a build recomputes, over their whole history, only the
  customers with a transaction in the slice fct_transactions gained since the latest computed_at here
  (macros/increments.sql); every other customer's row is what a full build would give, because nothing of
  theirs changed. Same numbers as a full build (tests/orchestration/test_increments.py).
#}
{%- set amount_history = 50 -%}
{%- set device_memory = 20 -%}
{%- set country_memory = 20 -%}

with tx as (
    select
        customer_id,
        event_time,
        round(amount * 100)::bigint as cents,
        device_id,
        nullif(ip_country, '') as ip_country,
        ip_lat,
        ip_lon,
        extract(hour from event_time at time zone 'UTC')::integer as utc_hour,
        -- 1 = the customer's latest transaction in the walk's order
        row_number() over (
            partition by customer_id order by event_time desc, transaction_id collate "C" desc
        ) as recency,
        -- position in the walk's order, for sums that must add up in the walk's order
        row_number() over (
            partition by customer_id order by event_time, transaction_id collate "C"
        ) as walk_position
    from {{ ref('fct_transactions') }}
    {% if is_incremental() %}
    -- an array, not `in (subquery)`: the index on customer_id instead of a hash over the whole fact
    where customer_id = any(array(
        select distinct customer_id from {{ ref('fct_transactions') }}
        where batch_loaded_at > {{ last_build_at('computed_at') }}
    ))
    {% endif %}
),

stats as (
    select
        customer_id,
        count(*) as n_transactions,
        -- over the last amounts: median = mean of the two middle values (percentile_cont, exact on cents),
        -- p95 = nearest rank, the ceil(0.95 k)-th smallest (percentile_disc), as CustomerState computes them
        percentile_cont(0.5) within group (order by cents::double precision)
            filter (where recency <= {{ amount_history }}) / 100::double precision as median_amount,
        (percentile_disc(0.95) within group (order by cents)
            filter (where recency <= {{ amount_history }}))::double precision / 100 as p95_amount,
        -- home = mean IP position over every located transaction, summed in the walk's order (float sums
        -- depend on the order: the same order gives the same bits)
        sum(ip_lat order by walk_position) filter (where ip_lat is not null and ip_lon is not null)
            / nullif(count(*) filter (where ip_lat is not null and ip_lon is not null), 0) as home_lat,
        sum(ip_lon order by walk_position) filter (where ip_lat is not null and ip_lon is not null)
            / nullif(count(*) filter (where ip_lat is not null and ip_lon is not null), 0) as home_lon,
        array[
            {%- for h in range(24) %}
            count(*) filter (where utc_hour = {{ h }}){{ "," if not loop.last }}
            {%- endfor %}
        ]::integer[] as hour_counts,
        max(event_time) as last_seen_at,
        -- descriptive, over the whole history (analysts; not read by the features)
        avg(cents) / 100.0 as mean_amount,
        coalesce(stddev_samp(cents) / 100.0, 0) as std_amount,
        min(event_time) as first_seen_at,
        mode() within group (order by utc_hour) as typical_hour
    from tx
    group by customer_id
),

-- devices and countries: the most recently used ones (each at its latest use), most recent last
device_recency as (
    select
        customer_id,
        device_id,
        row_number() over (partition by customer_id order by min(recency)) as rank_recent
    from tx
    group by customer_id, device_id
),

devices as (
    select customer_id, array_agg(device_id order by rank_recent desc) as usual_device_ids
    from device_recency
    where rank_recent <= {{ device_memory }}
    group by customer_id
),

country_recency as (
    select
        customer_id,
        ip_country,
        row_number() over (partition by customer_id order by min(recency)) as rank_recent
    from tx
    where ip_country is not null
    group by customer_id, ip_country
),

countries as (
    select customer_id, array_agg(ip_country order by rank_recent desc) as usual_countries
    from country_recency
    where rank_recent <= {{ country_memory }}
    group by customer_id
)

select
    s.customer_id,
    s.n_transactions,
    s.median_amount,
    s.p95_amount,
    coalesce(d.usual_device_ids, array[]::text[]) as usual_device_ids,
    coalesce(c.usual_countries, array[]::text[]) as usual_countries,
    s.home_lat,
    s.home_lon,
    s.hour_counts,
    s.last_seen_at,
    s.mean_amount::double precision as mean_amount,
    s.std_amount::double precision as std_amount,
    s.n_transactions
        / greatest(1.0, extract(epoch from (s.last_seen_at - s.first_seen_at)) / 86400.0) as avg_tx_per_day,
    s.typical_hour,
    s.first_seen_at,
    now() as computed_at
from stats as s
left join devices as d on d.customer_id = s.customer_id
left join countries as c on c.customer_id = s.customer_id
