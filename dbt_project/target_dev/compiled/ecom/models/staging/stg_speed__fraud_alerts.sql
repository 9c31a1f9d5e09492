-- Alerts raised by the speed layer, with their reasons (jsonb list, strongest first).
select
    transaction_id,
    customer_id,
    event_time,
    amount::numeric(14, 2) as amount,
    fraud_score,
    threshold as alert_threshold,
    model_version,
    reasons,
    created_at as alerted_at
from "ecom_batchdev"."speed"."fraud_alerts"