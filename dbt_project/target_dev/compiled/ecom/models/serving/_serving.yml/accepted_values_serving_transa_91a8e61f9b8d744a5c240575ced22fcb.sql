
    
    

with all_values as (

    select
        served_from as value_field,
        count(*) as n_records

    from "ecom_batchdev"."serving"."transactions"
    group by served_from

)

select *
from all_values
where value_field not in (
    'batch','realtime'
)


