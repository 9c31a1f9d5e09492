
    
    



select merchant_id
from "ecom_batchdev"."marts"."dim_merchant"
where merchant_id is null


