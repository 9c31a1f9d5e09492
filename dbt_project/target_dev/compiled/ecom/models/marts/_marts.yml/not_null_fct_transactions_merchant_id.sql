
    
    



select merchant_id
from "ecom_batchdev"."marts"."fct_transactions"
where merchant_id is null


