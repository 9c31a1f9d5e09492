
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select minute_start
from "ecom_batchdev"."serving"."kpis_minutely"
where minute_start is null



  
  
      
    ) dbt_internal_test