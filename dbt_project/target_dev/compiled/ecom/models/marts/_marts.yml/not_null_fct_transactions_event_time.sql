
    
    



select event_time
from "ecom_batchdev"."marts"."fct_transactions"
where event_time is null


