
    
    



select transaction_id
from "ecom_batchdev"."serving"."fraud_alerts"
where transaction_id is null


