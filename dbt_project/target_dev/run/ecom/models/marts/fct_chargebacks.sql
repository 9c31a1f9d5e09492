
  
    

  create  table "ecom_batchdev"."marts"."fct_chargebacks__dbt_tmp"
  
  
    as
  
  (
    -- One row per chargeback whose transaction is in fct_transactions (labels for a transaction not landed
-- yet wait for the next batch run).
select
    c.transaction_id,
    f.customer_sk,
    c.customer_id,
    f.merchant_id,
    (to_char(c.reported_at at time zone 'UTC', 'YYYYMMDD'))::integer as reported_date_key,
    c.reported_at,
    f.event_time as transaction_event_time,
    extract(epoch from (c.reported_at - f.event_time)) / 86400.0 as days_to_report,
    c.fraud_scenario,
    c.disputed_amount,
    f.amount as transaction_amount,
    f.fraud_score as fraud_score_at_build,
    f.is_alert as was_alerted,
    c.landed_at
from "ecom_batchdev"."staging"."stg_master__chargebacks" as c
inner join "ecom_batchdev"."marts"."fct_transactions" as f on f.transaction_id = c.transaction_id
  );
  