
    
    



select dbt_invocation_id
from "ecom_batchdev"."marts"."batch_watermark"
where dbt_invocation_id is null


