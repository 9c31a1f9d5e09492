{# Surrogate key of an inferred (late-arriving) customer: one per customer_id, stable across runs. #}
{% macro inferred_customer_sk(customer_id_expr) -%}
    md5({{ customer_id_expr }} || '~inferred')
{%- endmacro %}

{# Integer yyyymmdd key of dim_date for a timestamptz, in UTC. #}
{% macro date_key(ts_expr) -%}
    (to_char({{ ts_expr }} at time zone 'UTC', 'YYYYMMDD'))::integer
{%- endmacro %}
