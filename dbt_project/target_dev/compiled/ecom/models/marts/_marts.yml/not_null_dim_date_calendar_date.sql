
    
    



select calendar_date
from "ecom_batchdev"."marts"."dim_date"
where calendar_date is null


