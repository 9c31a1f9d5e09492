{#
  dbt-postgres stamps snapshot rows with `now()::timestamp without time zone`; every timestamp here is
  timestamptz (the contract's event times carry offsets), so keep the zone and silence the type warning.
#}
{% macro postgres__snapshot_get_time() -%}
    now()
{%- endmacro %}
