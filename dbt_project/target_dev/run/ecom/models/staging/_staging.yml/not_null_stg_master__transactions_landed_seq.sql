
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select landed_seq
from "ecom_batchdev"."staging"."stg_master__transactions"
where landed_seq is null



  
  
      
    ) dbt_internal_test