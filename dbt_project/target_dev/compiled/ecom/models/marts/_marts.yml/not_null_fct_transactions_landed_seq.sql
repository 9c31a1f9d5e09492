
    
    



select landed_seq
from "ecom_batchdev"."marts"."fct_transactions"
where landed_seq is null


