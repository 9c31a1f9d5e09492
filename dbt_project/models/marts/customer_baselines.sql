{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_id',
        on_schema_change='fail',
        pre_hook="{{ add_missing_columns([
            ['walk_recent_cents', 'bigint[]'], ['walk_sum_cents', 'numeric'], ['walk_sum_squared_cents', 'numeric'],
            ['walk_located_n', 'bigint'], ['walk_lat_sum', 'double precision'], ['walk_lon_sum', 'double precision'],
            ['walk_last_transaction_id', 'text'],
        ]) }}",
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
{#- a transaction as a step of the walk (the state columns are the prior state's, on its own row) -#}
{%- set transaction_step -%}
    customer_id, false as is_state, transaction_id, event_time, amount, device_id, ip_country, ip_lat, ip_lon,
    null::bigint as state_n, null::bigint[] as state_recent_cents, null::text[] as state_devices,
    null::text[] as state_countries, null::bigint as state_located_n, null::numeric as state_sum_cents,
    null::numeric as state_sum_squared_cents, null::integer[] as state_hour_counts,
    null::timestamptz as state_first_seen_at
{%- endset %}

{#-
  Plans here must not depend on estimates: an increment runs right after the append it reads, with
  statistics from before it (docs/batch.md, "Plans that do not depend on fresh statistics"). So nothing
  joins one CTE to another: tables are reached by index (`= any(array(...))`, the primary key of this
  table), and the prior state enters the walk as one more row per customer rather than through a join.
#}
{#- a table built before the state columns existed: every customer of the slice is walked again -#}
{%- set has_state = is_incremental()
    and 'walk_last_transaction_id' in (adapter.get_columns_in_relation(this) | map(attribute='name') | list) -%}
with
{% if is_incremental() %}
-- the new slice, each row flagged: does its customer's state walk on over the new transactions only?
slice as (
    select
        f.*,
        {% if has_state -%}
        bool_and(
            p.walk_last_transaction_id is not null
            and (f.event_time, f.transaction_id collate "C")
                > (p.last_seen_at, p.walk_last_transaction_id collate "C")
        ) over (partition by f.customer_id) as carried
        {%- else -%}
        false as carried
        {%- endif %}
    from {{ ref('fct_transactions') }} as f
    {% if has_state -%}
    left join {{ this }} as p on p.customer_id = f.customer_id
    {% endif -%}
    where f.batch_loaded_at > {{ last_build_at('computed_at') }}
),

-- the steps to walk: a carried customer's state (one row) and its new transactions; every transaction of
-- any other customer of the slice
steps as (
    select {{ transaction_step }}
    from slice
    where carried
    union all
    select {{ transaction_step }}
    from {{ ref('fct_transactions') }}
    where customer_id = any(array(select distinct customer_id from slice where not carried))
    {% if has_state -%}
    union all
    select
        customer_id, true, null, null, null, null, null, walk_lat_sum, walk_lon_sum,
        n_transactions, walk_recent_cents, usual_device_ids, usual_countries, walk_located_n, walk_sum_cents,
        walk_sum_squared_cents, hour_counts, first_seen_at
    from {{ this }}
    where customer_id = any(array(select distinct customer_id from slice where carried))
    {% endif %}
),
{% else %}
steps as (
    select {{ transaction_step }}
    from {{ ref('fct_transactions') }}
),
{% endif %}

tx as (
    select
        *,
        round(amount * 100)::bigint as cents,
        nullif(ip_country, '') as country,
        -- the state row stands for its located transactions when it has any (its coordinates are their sums)
        case when is_state then state_located_n > 0 else ip_lat is not null and ip_lon is not null end as located,
        extract(hour from event_time at time zone 'UTC')::integer as utc_hour,
        -- position in the walk's order (the state row, without event time, first), and from its end
        row_number() over (
            partition by customer_id order by event_time nulls first, transaction_id collate "C"
        ) as walk_position,
        row_number() over (
            partition by customer_id order by event_time desc nulls last, transaction_id collate "C" desc
        ) as recency
    from steps
),

-- the state after the walk: the prior state's (max() over the customer's one state row, or null) plus the
-- transactions walked
walk as (
    select
        customer_id,
        coalesce(max(state_n), 0) + count(*) filter (where not is_state) as n_transactions,
        coalesce(max(state_first_seen_at), min(event_time)) as first_seen_at,
        max(event_time) as last_seen_at,
        min(transaction_id) filter (where recency = 1) as last_transaction_id,
        coalesce(max(state_sum_cents), 0) + coalesce(sum(cents::numeric), 0) as sum_cents,
        coalesce(max(state_sum_squared_cents), 0) + coalesce(sum(cents::numeric * cents), 0) as sum_squared_cents,
        coalesce(max(state_located_n), 0) + count(*) filter (where located and not is_state) as located_n,
        -- float8 folds in the walk's order, continued from the state's sums: the same additions, the same bits
        sum(ip_lat order by walk_position) filter (where located) as lat_sum,
        sum(ip_lon order by walk_position) filter (where located) as lon_sum,
        array[
            {%- for h in range(24) %}
            coalesce(max(state_hour_counts[{{ h + 1 }}]), 0) + count(*) filter (where utc_hour = {{ h }})
            {{- "," if not loop.last }}
            {%- endfor %}
        ]::integer[] as hour_counts,
        -- the state's last amounts, devices and countries followed by the new ones, in the walk's order
        max(state_recent_cents)
            || array_agg(cents order by walk_position) filter (where recency <= {{ amount_history }} and not is_state)
            as amounts,
        max(state_devices) || array_agg(device_id order by walk_position) filter (where not is_state) as devices,
        max(state_countries) || array_agg(country order by walk_position) filter (where country is not null)
            as countries
    from tx
    group by customer_id
),

state as (
    select
        walk.*,
        amounts[greatest(cardinality(amounts) - {{ amount_history - 1 }}, 1):] as recent_cents
    from walk
)

select
    s.customer_id,
    s.n_transactions,
    -- over the last amounts: median = mean of the two middle values (percentile_cont, exact on cents),
    -- p95 = nearest rank, the ceil(0.95 k)-th smallest (percentile_disc), as CustomerState computes them
    q.median_cents / 100::double precision as median_amount,
    q.p95_cents / 100 as p95_amount,
    -- devices and countries: each at its latest use, the most recent ones, most recent last
    coalesce((select array_agg(v order by last_use) from (
        select v, max(i) as last_use from unnest(s.devices) with ordinality as u(v, i)
        group by v order by max(i) desc limit {{ device_memory }}
    ) as recent), array[]::text[]) as usual_device_ids,
    coalesce((select array_agg(v order by last_use) from (
        select v, max(i) as last_use from unnest(s.countries) with ordinality as u(v, i)
        group by v order by max(i) desc limit {{ country_memory }}
    ) as recent), array[]::text[]) as usual_countries,
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
    array_position(s.hour_counts, greatest(
        {%- for h in range(24) %}s.hour_counts[{{ h + 1 }}]{{ ", " if not loop.last }}{% endfor -%}
    )) - 1 as typical_hour,
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
cross join lateral (
    select
        percentile_cont(0.5) within group (order by v) as median_cents,
        percentile_disc(0.95) within group (order by v) as p95_cents
    from unnest(s.recent_cents::double precision[]) as v
) as q
