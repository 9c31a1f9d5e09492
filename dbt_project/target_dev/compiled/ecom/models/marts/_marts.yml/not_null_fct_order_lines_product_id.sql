
    
    



select product_id
from "ecom_batchdev"."marts"."fct_order_lines"
where product_id is null


