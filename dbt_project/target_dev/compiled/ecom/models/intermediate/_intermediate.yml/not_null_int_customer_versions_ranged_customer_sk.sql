
    
    



select customer_sk
from "ecom_batchdev"."intermediate"."int_customer_versions_ranged"
where customer_sk is null


