
    
    



select n_transactions
from "ecom_batchdev"."marts"."customer_baselines"
where n_transactions is null


