
    
    



select terminal_id
from "ecom_batchdev"."staging"."stg_master__transactions"
where terminal_id is null


