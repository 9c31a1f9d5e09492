{#
  Increments (docs/batch.md, "Increments"). Every incremental model above the facts stamps the rows a build
  writes with the build's transaction time (`now()`: fct_*.batch_loaded_at, dim_*.refreshed_at,
  customer_baselines.computed_at), and reads from fct_transactions / fct_order_lines only the rows stamped
  after its own latest stamp: the slice the facts gained since this model last succeeded. Builds are
  serialized by the build lock, so a later build's stamps are later; a model that failed in one build picks
  up every slice it missed in the next.

  `last_build_at(column)`: the latest stamp in {{ this }}, as SQL. Before the stamp column exists (a table
  built by an older version of the model) it is '-infinity': the facts' rows stamped so far are all new to
  it, and rows from before the stamp existed (null) are already in it.
#}
{% macro last_build_at(column) -%}
    {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {%- if column in existing -%}
        (select coalesce(max({{ column }}), '-infinity'::timestamptz) from {{ this }})
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{#
  Backfill of one event day (Dagster's partitioned `marts/fct_transactions_daily`, docs/batch.md): with
  `--vars '{backfill_day: YYYY-MM-DD}'` the facts drop that UTC day's rows and derive them again from the
  master dataset, in the same transaction as the insert (a pre-hook), so a reader sees the old day or the
  new one. Running it twice gives the same rows: idempotent.
#}
{% macro backfill_day() -%}
    {%- set day = var('backfill_day', none) -%}
    {%- if day is not none and not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', day | string) -%}
        {{ exceptions.raise_compiler_error("backfill_day must be a date YYYY-MM-DD, not '" ~ day ~ "'") }}
    {%- endif -%}
    {{ return(day) }}
{%- endmacro %}

{# SQL: `column` falls on the backfill day (UTC). #}
{% macro on_backfill_day(column) -%}
    {{ column }} >= ('{{ backfill_day() }}'::date::timestamp at time zone 'UTC')
    and {{ column }} < (('{{ backfill_day() }}'::date + 1)::timestamp at time zone 'UTC')
{%- endmacro %}

{# Pre-hook of the facts: in a backfill run, delete the day's rows before they are derived again. #}
{% macro delete_backfill_day(column) -%}
    {%- if backfill_day() is not none and is_incremental() -%}
        delete from {{ this }} where {{ on_backfill_day(column) }}
    {%- endif -%}
{%- endmacro %}

{#
  Post-hook of the facts: a customer the facts knew only as an inferred member (no reference row when its
  checkouts were built) may since have become known (the snapshot holds a version). A full build would key
  those checkouts to the version valid at their event time (the first version covers everything before it),
  so an increment re-keys them the same way. The build stamp stays: nothing downstream reads customer_sk
  from the slice (fct_chargebacks is rebuilt whole; the order lines would take a restamped checkout's lines
  as new and insert them twice). Only customers dim_customer holds as inferred members are looked at
  (few; an index lookup each on customer_id), read by name: dim_customer is built after the facts.
#}
{% macro rekey_known_customers() -%}
    {%- if is_incremental() -%}
        {%- set dim = adapter.get_relation(database=this.database, schema=this.schema, identifier='dim_customer') -%}
        {%- if dim is not none -%}
        update {{ this }} as f
        set customer_sk = v.customer_sk
        from {{ ref('int_customer_versions_ranged') }} as v
        where f.customer_id in (select d.customer_id from {{ dim }} as d where d.is_inferred)
          and v.customer_id = f.customer_id
          and f.event_time >= v.valid_from and f.event_time < v.valid_to
          and f.customer_sk = {{ inferred_customer_sk('f.customer_id') }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{# Post-hook of dim_customer: inferred members of customers the snapshot now knows (their checkouts were re-keyed). #}
{% macro drop_known_inferred_customers() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as d
        where d.is_inferred
          and exists (select 1 from {{ ref('int_customer_versions_ranged') }} as v where v.customer_id = d.customer_id)
    {%- endif -%}
{%- endmacro %}

{#
  Pre-hook of an incremental model that gained columns: add them to a table built by an older version of
  the model, typed as the model selects them (`columns`: a list of [name, type]). dbt's own
  on_schema_change cannot add array columns on Postgres (it writes the type as "ARRAY"). The model's SQL
  was compiled before this runs, so it must not read the new columns from {{ this }} when they are missing
  (customer_baselines checks with adapter.get_columns_in_relation, as last_build_at does).
#}
{% macro add_missing_columns(columns) -%}
    {%- if is_incremental() -%}
        {%- for name, type in columns -%}
        alter table {{ this }} add column if not exists {{ adapter.quote(name) }} {{ type }};
        {% endfor -%}
    {%- endif -%}
{%- endmacro %}
