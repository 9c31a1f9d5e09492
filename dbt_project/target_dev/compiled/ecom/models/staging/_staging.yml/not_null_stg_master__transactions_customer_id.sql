
    
    



select customer_id
from "ecom_batchdev"."staging"."stg_master__transactions"
where customer_id is null


