
    
    



select amount
from "ecom_batchdev"."marts"."fct_transactions"
where amount is null


