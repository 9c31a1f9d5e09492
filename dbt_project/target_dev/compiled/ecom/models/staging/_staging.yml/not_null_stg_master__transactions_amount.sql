
    
    



select amount
from "ecom_batchdev"."staging"."stg_master__transactions"
where amount is null


