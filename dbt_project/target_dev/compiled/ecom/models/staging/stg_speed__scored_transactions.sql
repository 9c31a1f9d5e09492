-- The speed layer's score for each transaction (one row per transaction_id).
select
    transaction_id,
    fraud_score,
    is_alert,
    model_version,
    batch_id as stream_batch_id,
    committed_at as scored_at
from "ecom_batchdev"."speed"."scored_transactions"