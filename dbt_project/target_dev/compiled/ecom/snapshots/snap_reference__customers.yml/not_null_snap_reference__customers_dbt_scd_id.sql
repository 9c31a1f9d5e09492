
    
    



select dbt_scd_id
from "ecom_batchdev"."snapshots"."snap_reference__customers"
where dbt_scd_id is null


