
    
    



select channel
from "ecom_batchdev"."marts"."dim_channel"
where channel is null


