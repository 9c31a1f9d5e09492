
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select customer_sk
from "ecom_batchdev"."intermediate"."int_customer_versions_ranged"
where customer_sk is null



  
  
      
    ) dbt_internal_test