
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select reported_date_key
from "ecom_batchdev"."marts"."fct_chargebacks"
where reported_date_key is null



  
  
      
    ) dbt_internal_test