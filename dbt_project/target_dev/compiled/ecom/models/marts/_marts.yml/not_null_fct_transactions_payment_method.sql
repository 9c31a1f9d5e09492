
    
    



select payment_method
from "ecom_batchdev"."marts"."fct_transactions"
where payment_method is null


