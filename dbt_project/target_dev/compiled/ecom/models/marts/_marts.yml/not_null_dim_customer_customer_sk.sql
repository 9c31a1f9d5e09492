
    
    



select customer_sk
from "ecom_batchdev"."marts"."dim_customer"
where customer_sk is null


