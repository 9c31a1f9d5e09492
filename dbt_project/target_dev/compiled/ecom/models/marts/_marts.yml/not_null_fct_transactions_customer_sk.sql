
    
    



select customer_sk
from "ecom_batchdev"."marts"."fct_transactions"
where customer_sk is null


