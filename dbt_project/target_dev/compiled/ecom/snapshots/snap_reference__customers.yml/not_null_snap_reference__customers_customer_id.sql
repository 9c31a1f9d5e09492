
    
    



select customer_id
from "ecom_batchdev"."snapshots"."snap_reference__customers"
where customer_id is null


