
    
    



select transaction_id
from "ecom_batchdev"."staging"."stg_speed__scored_transactions"
where transaction_id is null


