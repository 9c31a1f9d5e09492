
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    

select
    landed_seq as unique_field,
    count(*) as n_records

from "ecom_batchdev"."marts"."fct_transactions"
where landed_seq is not null
group by landed_seq
having count(*) > 1



  
  
      
    ) dbt_internal_test