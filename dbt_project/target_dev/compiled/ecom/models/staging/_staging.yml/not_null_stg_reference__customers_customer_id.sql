
    
    



select customer_id
from "ecom_batchdev"."staging"."stg_reference__customers"
where customer_id is null


