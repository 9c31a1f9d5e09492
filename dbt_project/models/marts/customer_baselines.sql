{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_id',
        on_schema_change='append_new_columns',
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

  Each row also keeps the walk's state (the `walk_*` columns: last 50 amounts, exact sums, the
  coordinates' running sums, the last transaction walked), so a build can go on walking from it instead of
  walking the customer's history again. Every output column is computed from that state by the same SQL
  in a full build and in an increment.

  Incremental (delete+insert on customer_id), for the customers with a transaction in the slice
  fct_transactions gained since the latest computed_at here (macros/increments.sql):
  * carried forward: when every new transaction of the customer comes after the last one walked (event
    time, then id: the common case), the state walks on over the new transactions only, which is the
    same walk a full build does, step for step (integer and numeric sums are exact; the coordinate sums
    are float8 folds continued in the same order, so the same bits);
  * walked again: otherwise (a late event, a backfilled day, a row without state from an older build of
    this model) the customer's whole history is walked, as before.
  Every other customer's row is what a full build would give, because nothing of theirs changed. Same
  numbers as a full build (tests/orchestration/test_increments.py).
#}
{%- set amount_history = 50 -%}
{%- set device_memory = 20 -%}
{%- set country_memory = 20 -%}

with
{% if is_incremental() %}
slice as (
    select * from {{ ref('fct_transactions') }}
    where batch_loaded_at > {{ last_build_at('computed_at') }}
),

-- per customer of the slice: can its state walk on over the new transactions only?
slice_customers as (
    select
        s.customer_id,
        bool_and(
            p.walk_last_transaction_id is not null
            and (s.event_time, s.transaction_id collate "C")
                > (p.last_seen_at, p.walk_last_transaction_id collate "C")
        ) as carried
    from slice as s
    left join {{ this }} as p on p.customer_id = s.customer_id
    group by s.customer_id
),

-- the transactions to walk: a carried customer's new ones, every one of a customer walked again
walked as (
    select s.*
    from slice as s
    where s.customer_id in (select customer_id from slice_customers where carried)
    union all
    select f.*
    from {{ ref('fct_transactions') }} as f
    -- an array, not `in (subquery)`: the index on customer_id instead of a hash over the whole fact
    where f.customer_id = any(array(select customer_id from slice_customers where not carried))
),

-- the state the carried customers walk on from
prior as (
    select
        p.customer_id, p.n_transactions, p.walk_recent_cents, p.usual_device_ids, p.usual_countries,
        p.walk_located_n, p.walk_lat_sum, p.walk_lon_sum, p.walk_sum_cents, p.walk_sum_squared_cents,
        p.hour_counts, p.first_seen_at
    from {{ this }} as p
    where p.customer_id in (select customer_id from slice_customers where carried)
),
{% else %}
walked as (
    select * from {{ ref('fct_transactions') }}
),

prior as (
    select
        null::text as customer_id, null::bigint as n_transactions, null::bigint[] as walk_recent_cents,
        null::text[] as usual_device_ids, null::text[] as usual_countries, null::bigint as walk_located_n,
        null::double precision as walk_lat_sum, null::double precision as walk_lon_sum,
        null::numeric as walk_sum_cents, null::numeric as walk_sum_squared_cents,
        null::integer[] as hour_counts, null::timestamptz as first_seen_at
    where false
),
{% endif %}

tx as (
    select
        customer_id,
        transaction_id,
        event_time,
        round(amount * 100)::bigint as cents,
        device_id,
        nullif(ip_country, '') as ip_country,
        ip_lat,
        ip_lon,
        ip_lat is not null and ip_lon is not null as located,
        extract(hour from event_time at time zone 'UTC')::integer as utc_hour,
        -- position in the walk's order, and from its end (1 = the latest)
        row_number() over (
            partition by customer_id order by event_time, transaction_id collate "C"
        ) as walk_position,
        row_number() over (
            partition by customer_id order by event_time desc, transaction_id collate "C" desc
        ) as recency
    from walked
),

-- what the walk over these transactions adds, per customer
walk as (
    select
        customer_id,
        count(*) as n,
        min(event_time) as first_seen_at,
        max(event_time) as last_seen_at,
        min(transaction_id) filter (where recency = 1) as last_transaction_id,
        sum(cents::numeric) as sum_cents,
        sum(cents::numeric * cents) as sum_squared_cents,
        count(*) filter (where located) as located_n,
        array[
            {%- for h in range(24) %}
            count(*) filter (where utc_hour = {{ h }}){{ "," if not loop.last }}
            {%- endfor %}
        ]::integer[] as hour_counts,
        -- the last 50 of these amounts, in the walk's order
        array_agg(cents order by walk_position) filter (where recency <= {{ amount_history }}) as cents_walked,
        array_agg(device_id order by walk_position) as devices_walked,
        array_agg(ip_country order by walk_position) filter (where ip_country is not null) as countries_walked
    from tx
    group by customer_id
),

-- the coordinate sums: float8 folds in the walk's order, continued from the prior state's (position 0)
coordinates as (
    select customer_id, sum(lat order by position) as lat_sum, sum(lon order by position) as lon_sum
    from (
        select customer_id, 0::bigint as position, walk_lat_sum as lat, walk_lon_sum as lon
        from prior where walk_located_n > 0
        union all
        select customer_id, walk_position, ip_lat, ip_lon from tx where located
    ) as located_steps
    group by customer_id
),

state as (
    select
        w.customer_id,
        coalesce(p.n_transactions, 0) + w.n as n_transactions,
        coalesce(p.first_seen_at, w.first_seen_at) as first_seen_at,
        w.last_seen_at,
        w.last_transaction_id,
        coalesce(p.walk_sum_cents, 0) + w.sum_cents as sum_cents,
        coalesce(p.walk_sum_squared_cents, 0) + w.sum_squared_cents as sum_squared_cents,
        coalesce(p.walk_located_n, 0) + w.located_n as located_n,
        c.lat_sum,
        c.lon_sum,
        array(
            select coalesce(a, 0) + coalesce(b, 0)
            from unnest(p.hour_counts, w.hour_counts) with ordinality as u(a, b, hour)
            order by hour
        ) as hour_counts,
        -- the last 50 amounts of the prior state's followed by the new ones
        (select array_agg(v order by i) from (
            select v, i from unnest(p.walk_recent_cents || w.cents_walked) with ordinality as u(v, i)
            order by i desc limit {{ amount_history }}
        ) as last_amounts) as recent_cents,
        -- devices and countries: each at its latest use, the most recent ones, most recent last
        (select array_agg(v order by last_use) from (
            select v, max(i) as last_use
            from unnest(p.usual_device_ids || w.devices_walked) with ordinality as u(v, i)
            group by v order by max(i) desc limit {{ device_memory }}
        ) as recent) as usual_device_ids,
        (select array_agg(v order by last_use) from (
            select v, max(i) as last_use
            from unnest(p.usual_countries || w.countries_walked) with ordinality as u(v, i)
            group by v order by max(i) desc limit {{ country_memory }}
        ) as recent) as usual_countries
    from walk as w
    left join prior as p on p.customer_id = w.customer_id
    left join coordinates as c on c.customer_id = w.customer_id
)

select
    s.customer_id,
    s.n_transactions,
    -- over the last amounts: median = mean of the two middle values (percentile_cont, exact on cents),
    -- p95 = nearest rank, the ceil(0.95 k)-th smallest (percentile_disc), as CustomerState computes them
    (select percentile_cont(0.5) within group (order by v::double precision) from unnest(s.recent_cents) as v)
        / 100::double precision as median_amount,
    (select percentile_disc(0.95) within group (order by v) from unnest(s.recent_cents) as v)::double precision
        / 100 as p95_amount,
    coalesce(s.usual_device_ids, array[]::text[]) as usual_device_ids,
    coalesce(s.usual_countries, array[]::text[]) as usual_countries,
    -- home = mean IP position over every located transaction
    s.lat_sum / nullif(s.located_n, 0) as home_lat,
    s.lon_sum / nullif(s.located_n, 0) as home_lon,
    s.hour_counts,
    s.last_seen_at,
    -- descriptive, over the whole history (analysts; not read by the features)
    (s.sum_cents / s.n_transactions / 100.0)::double precision as mean_amount,
    (case
        when s.n_transactions > 1 then sqrt(
            greatest(s.n_transactions * s.sum_squared_cents - s.sum_cents * s.sum_cents, 0)
            / (s.n_transactions * (s.n_transactions - 1)::numeric)
        ) / 100.0
        else 0
    end)::double precision as std_amount,
    s.n_transactions
        / greatest(1.0, extract(epoch from (s.last_seen_at - s.first_seen_at)) / 86400.0) as avg_tx_per_day,
    -- most frequent hour, the earliest of equally frequent ones (as mode() over the sorted hours)
    (select hour - 1 from unnest(s.hour_counts) with ordinality as u(n, hour) order by n desc, hour limit 1)::integer
        as typical_hour,
    s.first_seen_at,
    now() as computed_at,
    -- the walk's state, for the next increment to walk on from
    s.recent_cents as walk_recent_cents,
    s.sum_cents as walk_sum_cents,
    s.sum_squared_cents as walk_sum_squared_cents,
    s.located_n as walk_located_n,
    s.lat_sum as walk_lat_sum,
    s.lon_sum as walk_lon_sum,
    s.last_transaction_id as walk_last_transaction_id
from state as s
