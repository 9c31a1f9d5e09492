{#
  One row per batch build: the highest landed_seq the build put into fct_transactions. The serving views
  take the batch view up to the latest watermark and the landed rows after it. Incremental (append): the
  table is never dropped, so the serving views that read it are never dropped by a rebuild either.
#}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}

select
    '{{ invocation_id }}'::text as dbt_invocation_id,
    coalesce(max(landed_seq), 0)::bigint as watermark_seq,
    count(*)::bigint as n_transactions,
    max(landed_at) as last_landed_at,
    now() as built_at
from {{ ref('fct_transactions') }}
