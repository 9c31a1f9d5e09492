
    
    



select transaction_id
from "ecom_batchdev"."staging"."stg_master__transactions"
where transaction_id is null


