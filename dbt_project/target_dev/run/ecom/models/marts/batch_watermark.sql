
      
  
    

  create  table "ecom_batchdev"."marts"."batch_watermark__dbt_tmp"
  
  
    as
  
  (
    


select
    'c803d6eb-068c-42f7-9ce4-9220fbbe89f0'::text as dbt_invocation_id,
    coalesce(max(landed_seq), 0)::bigint as watermark_seq,
    count(*)::bigint as n_transactions,
    max(landed_at) as last_landed_at,
    now() as built_at
from "ecom_batchdev"."marts"."fct_transactions"
  );
  
  