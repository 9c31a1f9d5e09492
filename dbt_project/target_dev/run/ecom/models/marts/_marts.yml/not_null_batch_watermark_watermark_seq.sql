
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select watermark_seq
from "ecom_batchdev"."marts"."batch_watermark"
where watermark_seq is null



  
  
      
    ) dbt_internal_test