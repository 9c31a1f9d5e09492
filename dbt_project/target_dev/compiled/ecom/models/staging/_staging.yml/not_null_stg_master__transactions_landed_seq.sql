
    
    



select landed_seq
from "ecom_batchdev"."staging"."stg_master__transactions"
where landed_seq is null


