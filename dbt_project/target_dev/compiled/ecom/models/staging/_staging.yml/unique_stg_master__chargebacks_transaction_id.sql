
    
    

select
    transaction_id as unique_field,
    count(*) as n_records

from "ecom_batchdev"."staging"."stg_master__chargebacks"
where transaction_id is not null
group by transaction_id
having count(*) > 1


