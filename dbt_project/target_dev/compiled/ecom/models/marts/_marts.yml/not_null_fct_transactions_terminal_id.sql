
    
    



select terminal_id
from "ecom_batchdev"."marts"."fct_transactions"
where terminal_id is null


