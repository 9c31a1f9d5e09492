
    
    



select product_id
from "ecom_batchdev"."staging"."stg_reference__products"
where product_id is null


