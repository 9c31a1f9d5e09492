
    
    



select merchant_id
from "ecom_batchdev"."staging"."stg_master__transactions"
where merchant_id is null


