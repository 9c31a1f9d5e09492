
    
    



select product_id
from "ecom_batchdev"."marts"."dim_product"
where product_id is null


