
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select channel
from "ecom_batchdev"."marts"."fct_transactions"
where channel is null



  
  
      
    ) dbt_internal_test