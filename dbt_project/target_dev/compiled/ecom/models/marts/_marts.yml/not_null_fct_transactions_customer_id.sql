
    
    



select customer_id
from "ecom_batchdev"."marts"."fct_transactions"
where customer_id is null


