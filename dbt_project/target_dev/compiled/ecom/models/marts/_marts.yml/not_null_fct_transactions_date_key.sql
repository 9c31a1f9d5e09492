
    
    



select date_key
from "ecom_batchdev"."marts"."fct_transactions"
where date_key is null


