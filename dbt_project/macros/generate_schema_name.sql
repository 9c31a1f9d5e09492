{#
  Schemas are exactly the layer names (staging, intermediate, marts, serving, snapshots), not dbt's default
  <target_schema>_<custom_schema>: other rooms (the speed layer, Metabase cards, GX suites) address
  them by name.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
