
    
    



select device_id
from "ecom_batchdev"."marts"."fct_transactions"
where device_id is null


