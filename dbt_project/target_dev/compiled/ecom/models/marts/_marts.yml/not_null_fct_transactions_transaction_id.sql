
    
    



select transaction_id
from "ecom_batchdev"."marts"."fct_transactions"
where transaction_id is null


