
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select n_transactions
from "ecom_batchdev"."marts"."customer_baselines"
where n_transactions is null



  
  
      
    ) dbt_internal_test