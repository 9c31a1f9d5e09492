
    
    



select terminal_id
from "ecom_batchdev"."marts"."dim_terminal"
where terminal_id is null


