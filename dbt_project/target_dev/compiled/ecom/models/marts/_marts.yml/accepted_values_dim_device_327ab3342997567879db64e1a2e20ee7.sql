
    
    

with all_values as (

    select
        device_type as value_field,
        count(*) as n_records

    from "ecom_batchdev"."marts"."dim_device"
    group by device_type

)

select *
from all_values
where value_field not in (
    'desktop','mobile','tablet','pos_terminal'
)


