
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select event_time
from "ecom_batchdev"."marts"."fct_transactions"
where event_time is null



  
  
      
    ) dbt_internal_test