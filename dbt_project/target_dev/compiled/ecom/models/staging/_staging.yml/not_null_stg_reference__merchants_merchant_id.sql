
    
    



select merchant_id
from "ecom_batchdev"."staging"."stg_reference__merchants"
where merchant_id is null


