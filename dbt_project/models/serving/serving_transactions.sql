{{ config(alias='transactions') }}
-- Every landed transaction exactly once, fresh to the second, with the speed layer's fraud score.
{{ serving_transactions_sql() }}
