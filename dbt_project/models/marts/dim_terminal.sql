{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='terminal_id',
        on_schema_change='sync_all_columns',
        indexes=[{'columns': ['terminal_id'], 'unique': True}],
    )
}}
-- Payment terminals / web checkouts (type 1) plus inferred members for terminal ids seen only in the facts
-- (merchant of the terminal's earliest checkout). Incremental like dim_merchant: reference rows rewritten
-- every build; inferred members recomputed, over all their checkouts, only for the unknown terminals used
-- in the slice the facts gained since this model's last build (macros/increments.sql), so a late-arriving
-- earlier checkout moves the merchant as a full build would.
with reference as (
    select terminal_id, merchant_id, terminal_kind, terminal_city, terminal_country, terminal_lat, terminal_lon,
        false as is_inferred
    from {{ ref('stg_reference__terminals') }}
),

inferred as (
    select distinct on (f.terminal_id)
        f.terminal_id, f.merchant_id, null::text, null::text, null::text, null::double precision,
        null::double precision, true
    from {{ ref('fct_transactions') }} as f
    where not exists (select 1 from reference as r where r.terminal_id = f.terminal_id)
    {% if is_incremental() %}
      -- the unknown terminals of the slice (usually none) as an array: the index on terminal_id, not a
      -- scan of the whole fact
      and f.terminal_id = any(array(
          select distinct s.terminal_id from {{ ref('fct_transactions') }} as s
          where s.batch_loaded_at > {{ last_build_at('refreshed_at') }}
            and not exists (select 1 from reference as r where r.terminal_id = s.terminal_id)
      ))
    {% endif %}
    order by f.terminal_id, f.event_time, f.transaction_id
),

members as (
    select * from reference
    union all
    select * from inferred
)

select *, now() as refreshed_at from members
