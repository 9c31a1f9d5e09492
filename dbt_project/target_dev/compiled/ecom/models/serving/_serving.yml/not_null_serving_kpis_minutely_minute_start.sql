
    
    



select minute_start
from "ecom_batchdev"."serving"."kpis_minutely"
where minute_start is null


