
    
    



select transaction_id
from "ecom_batchdev"."marts"."fct_chargebacks"
where transaction_id is null


