
    
    



select date_key
from "ecom_batchdev"."marts"."dim_date"
where date_key is null


