{#
  Checks scoped to the new slice (docs/batch.md, "Checks on the new slice"). The tests of the models that
  grow with the master dataset carry `where: new_slice` (dbt_project.yml); dbt calls this macro to wrap the
  tested relation, and it keeps only the rows the latest build added:

    fct_transactions, fct_order_lines  batch_loaded_at of the latest build that added rows
    stg_master__transactions           landed_seq above the latest batch watermark, less the look-back
                                       (the rows this build is about to add, late commits included)
    stg_speed__scored_transactions     scored since the previous build (its batch_watermark built_at),
                                       less `speed_commit_lookback` (a score's committed_at is taken
                                       when its row is written, a little before the speed layer's
                                       transaction commits)

  Sound because those rows never change once built (the facts are append-only, the master dataset is
  immutable), the parents a relationships test joins to never lose a key, and uniqueness against the older
  rows is also enforced by unique indexes (fct_*: transaction_id / order_line_id; master.transactions:
  transaction_id, landed_seq; speed.scored_transactions: its primary key, which also makes transaction_id
  not null), so a duplicate cannot hide outside the slice.

  With the environment variable ECOM_DBT_CHECKS=all (the scheduled run: Dagster's op config
  `checks: all`) or on any other relation, the test reads the whole relation, as dbt does by default.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where != 'new_slice' -%}
        {{ return(dbt.default__get_where_subquery(relation)) }}
    {%- endif -%}
    {%- set predicate = new_slice_predicate(relation) -%}
    {%- if env_var('ECOM_DBT_CHECKS', 'new') == 'all' or predicate is none -%}
        {{ return(relation) }}
    {%- endif -%}
    {{ return('(select * from ' ~ relation ~ ' where ' ~ predicate ~ ') dbt_subquery') }}
{%- endmacro %}

{% macro new_slice_predicate(relation) -%}
    {%- if relation.identifier in ['fct_transactions', 'fct_order_lines'] -%}
        {{ return('batch_loaded_at >= (select max(batch_loaded_at) from ' ~ relation ~ ')') }}
    {%- elif relation.identifier == 'stg_master__transactions' -%}
        {%- set log = adapter.get_relation(database=target.database, schema='marts', identifier='batch_watermark') -%}
        {%- if log is none -%}
            {{ return(none) }}
        {%- endif -%}
        {{ return('landed_seq > (select coalesce(max(watermark_seq), 0) from ' ~ log ~ ') - '
                  ~ var('late_landing_lookback')) }}
    {%- elif relation.identifier == 'stg_speed__scored_transactions' -%}
        {%- set log = adapter.get_relation(database=target.database, schema='marts', identifier='batch_watermark') -%}
        {%- if log is none -%}
            {{ return(none) }}
        {%- endif -%}
        {{ return("scored_at > (select coalesce(max(built_at), '-infinity'::timestamptz) from " ~ log ~ ") - interval '"
                  ~ var('speed_commit_lookback') ~ "'") }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}
