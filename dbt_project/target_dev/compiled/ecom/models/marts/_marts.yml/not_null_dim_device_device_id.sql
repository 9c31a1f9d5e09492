
    
    



select device_id
from "ecom_batchdev"."marts"."dim_device"
where device_id is null


