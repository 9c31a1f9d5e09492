
    
    



select transaction_id
from "ecom_batchdev"."staging"."stg_speed__fraud_alerts"
where transaction_id is null


