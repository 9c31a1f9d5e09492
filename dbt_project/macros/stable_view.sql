{#
  `stable_view`: CREATE OR REPLACE VIEW instead of dbt's rename-and-drop-cascade, so what others build on
  the serving layer (Metabase questions, analysts' views) is never dropped by a batch refresh, and a reader
  sees the old or the new definition, never no relation. When the new column list is not an extension of
  the old one (Postgres cannot replace it), the view is dropped and created.
#}
{% materialization stable_view, adapter='postgres' %}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set existing = load_cached_relation(this) -%}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set must_drop = false -%}
    {%- if existing is not none and existing.type != 'view' -%}
        {%- set must_drop = true -%}
    {%- elif existing is not none -%}
        {%- set old_columns = adapter.get_columns_in_relation(existing) | map(attribute='name') | list -%}
        {%- set new_columns = get_column_schema_from_query(sql) | map(attribute='name') | list -%}
        {%- if new_columns[:old_columns | length] != old_columns -%}
            {%- set must_drop = true -%}
        {%- endif -%}
    {%- endif -%}
    {%- if must_drop -%}
        {{ adapter.drop_relation(existing) }}
    {%- endif -%}

    {% call statement('main') -%}
        create or replace view {{ target_relation }} as (
            {{ sql }}
        );
    {%- endcall %}

    {{ persist_docs(target_relation, model) }}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
