
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select dbt_invocation_id
from "ecom_batchdev"."marts"."batch_watermark"
where dbt_invocation_id is null



  
  
      
    ) dbt_internal_test