
    
    



select device_type
from "ecom_batchdev"."marts"."dim_device"
where device_type is null


