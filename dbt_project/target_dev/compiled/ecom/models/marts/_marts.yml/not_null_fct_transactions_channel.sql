
    
    



select channel
from "ecom_batchdev"."marts"."fct_transactions"
where channel is null


