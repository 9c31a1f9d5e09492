
    
    



select customer_id
from "ecom_batchdev"."marts"."customer_baselines"
where customer_id is null


