
    
    

select
    transaction_id as unique_field,
    count(*) as n_records

from (select * from "ecom_batchdev"."serving"."transactions" where landed_seq > (select coalesce(max(watermark_seq), 0) from marts.batch_watermark) - 100000) dbt_subquery
where transaction_id is not null
group by transaction_id
having count(*) > 1


