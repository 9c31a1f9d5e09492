
    
    

select
    landed_seq as unique_field,
    count(*) as n_records

from "ecom_batchdev"."staging"."stg_master__transactions"
where landed_seq is not null
group by landed_seq
having count(*) > 1


