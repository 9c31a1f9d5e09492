
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    

select
    minute_start as unique_field,
    count(*) as n_records

from "ecom_batchdev"."serving"."kpis_minutely"
where minute_start is not null
group by minute_start
having count(*) > 1



  
  
      
    ) dbt_internal_test