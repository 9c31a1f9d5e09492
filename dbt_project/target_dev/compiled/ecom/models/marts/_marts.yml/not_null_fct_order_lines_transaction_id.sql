
    
    



select transaction_id
from "ecom_batchdev"."marts"."fct_order_lines"
where transaction_id is null


