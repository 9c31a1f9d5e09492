{#
  One row per checkout: the star's central fact. Incremental on landed_seq (the landing order of the
  append-only master dataset), not on event time: each run appends the rows landed since the last run,
  whatever their event time (a late-arriving event, a replayed history from years ago). Rows that committed
  late, below the previous high-water mark, are caught by looking back `late_landing_lookback` positions
  and skipping what is already here (anti-join on transaction_id; the unique index refuses a double), so
  no row is missed or doubled. `batch_loaded_at` (the build's transaction time) marks the slice a build
  added: the models downstream read only that slice, and the checks on this model test only it
  (macros/new_slice.sql). With var backfill_day, a run derives that event day again instead
  (macros/increments.sql). See docs/batch.md, "Increments".
  customer_sk points at the customer version valid at event time (SCD2, snap_reference__customers; the first
  version also covers events before it), or an inferred member when the customer is unknown.
  Indexes on customer_id, device_id and terminal_id: the increments of customer_baselines, dim_device and
  dim_terminal read every checkout of the customers / devices / unknown terminals in the new slice, an index
  lookup each rather than a scan of the fact.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='sync_all_columns',
        pre_hook="{{ delete_backfill_day('event_time') }}",
        post_hook="{{ rekey_known_customers() }}",
        indexes=[
            {'columns': ['transaction_id'], 'unique': True},
            {'columns': ['landed_seq']},
            {'columns': ['event_time']},
            {'columns': ['batch_loaded_at']},
            {'columns': ['customer_id']},
            {'columns': ['device_id']},
            {'columns': ['terminal_id']},
        ],
    )
}}

with landed as (
    select t.*
    from {{ ref('stg_master__transactions') }} as t
    {% if is_incremental() and backfill_day() is not none %}
    where {{ on_backfill_day('t.event_time') }}
    {% elif is_incremental() %}
    where t.landed_seq > (select coalesce(max(landed_seq), 0) from {{ this }}) - {{ var('late_landing_lookback') }}
      and not exists (select 1 from {{ this }} as f where f.transaction_id = t.transaction_id)
    {% endif %}
),

versions as (
    select customer_sk, customer_id, valid_from, valid_to from {{ ref('int_customer_versions_ranged') }}
),

scores as (
    select * from {{ ref('stg_speed__scored_transactions') }}
)

select
    l.transaction_id,
    coalesce(v.customer_sk, {{ inferred_customer_sk('l.customer_id') }}) as customer_sk,
    l.customer_id,
    l.merchant_id,
    l.terminal_id,
    l.device_id,
    {{ date_key('l.event_time') }} as date_key,
    l.payment_method,
    l.channel,
    l.device_type,
    l.event_time,
    l.currency_code,
    l.amount,
    l.n_line_items,
    l.ip_address,
    l.ip_country,
    l.ip_city,
    l.ip_lat,
    l.ip_lon,
    s.fraud_score,
    s.is_alert,
    s.model_version,
    s.scored_at,
    l.kafka_topic,
    l.kafka_partition,
    l.kafka_offset,
    l.landed_at,
    l.landed_seq,
    now() as batch_loaded_at
from landed as l
-- the validity ranges of one customer never overlap and start at -infinity: at most one version matches
left join versions as v
    on v.customer_id = l.customer_id
    and l.event_time >= v.valid_from
    and l.event_time < v.valid_to
left join scores as s on s.transaction_id = l.transaction_id
