{{ config(alias='fraud_alerts') }}
-- Fraud alerts from the speed layer with the transaction's context, reasons as one sentence, and whether a
-- chargeback has since confirmed the fraud. Reads staging views only (never dropped by a refresh; a
-- marts table would be, taking this view with it).
select
    a.transaction_id,
    a.customer_id,
    t.merchant_id,
    a.event_time,
    a.amount,
    t.currency_code,
    t.payment_method,
    t.channel,
    t.device_type,
    t.ip_country,
    a.fraud_score,
    a.alert_threshold,
    a.model_version,
    a.reasons,
    (
        select string_agg(r ->> 'text', '; ' order by ord)
        from jsonb_array_elements(case when jsonb_typeof(a.reasons) = 'array' then a.reasons else '[]'::jsonb end)
            with ordinality as x (r, ord)
    ) as reason_summary,
    c.transaction_id is not null as is_confirmed_fraud,
    c.fraud_scenario as confirmed_scenario,
    a.alerted_at
from {{ ref('stg_speed__fraud_alerts') }} as a
left join {{ ref('stg_master__transactions') }} as t on t.transaction_id = a.transaction_id
left join {{ ref('stg_master__chargebacks') }} as c on c.transaction_id = a.transaction_id
