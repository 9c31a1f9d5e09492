-- One row per chargeback (fraud label) as landed.
select
    transaction_id,
    schema_version,
    customer_id,
    reported_at,
    fraud_scenario,
    amount::numeric(14, 2) as disputed_amount,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    landed_at
from "ecom_batchdev"."master"."chargebacks"