
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    

select
    terminal_id as unique_field,
    count(*) as n_records

from "ecom_batchdev"."marts"."dim_terminal"
where terminal_id is not null
group by terminal_id
having count(*) > 1



  
  
      
    ) dbt_internal_test