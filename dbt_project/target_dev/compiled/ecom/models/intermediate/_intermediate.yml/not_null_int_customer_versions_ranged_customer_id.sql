
    
    



select customer_id
from "ecom_batchdev"."intermediate"."int_customer_versions_ranged"
where customer_id is null


