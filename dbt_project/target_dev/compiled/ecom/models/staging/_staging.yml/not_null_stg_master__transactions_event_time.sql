
    
    



select event_time
from "ecom_batchdev"."staging"."stg_master__transactions"
where event_time is null


