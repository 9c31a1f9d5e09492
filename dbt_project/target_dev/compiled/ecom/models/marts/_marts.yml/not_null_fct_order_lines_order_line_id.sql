
    
    



select order_line_id
from "ecom_batchdev"."marts"."fct_order_lines"
where order_line_id is null


