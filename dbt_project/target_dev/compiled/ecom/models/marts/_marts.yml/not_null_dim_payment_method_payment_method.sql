
    
    



select payment_method
from "ecom_batchdev"."marts"."dim_payment_method"
where payment_method is null


