
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    

select
    dbt_invocation_id as unique_field,
    count(*) as n_records

from "ecom_batchdev"."marts"."batch_watermark"
where dbt_invocation_id is not null
group by dbt_invocation_id
having count(*) > 1



  
  
      
    ) dbt_internal_test