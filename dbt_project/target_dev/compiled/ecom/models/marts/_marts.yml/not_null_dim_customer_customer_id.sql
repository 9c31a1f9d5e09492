
    
    



select customer_id
from "ecom_batchdev"."marts"."dim_customer"
where customer_id is null


