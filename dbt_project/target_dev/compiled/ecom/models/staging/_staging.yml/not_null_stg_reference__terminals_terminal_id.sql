
    
    



select terminal_id
from "ecom_batchdev"."staging"."stg_reference__terminals"
where terminal_id is null


