
    
    



select transaction_id
from "ecom_batchdev"."serving"."transactions"
where transaction_id is null


