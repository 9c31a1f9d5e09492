
    
    



select reported_date_key
from "ecom_batchdev"."marts"."fct_chargebacks"
where reported_date_key is null


