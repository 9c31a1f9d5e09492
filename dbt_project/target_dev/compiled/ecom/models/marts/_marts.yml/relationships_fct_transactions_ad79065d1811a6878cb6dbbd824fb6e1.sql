
    
    

with child as (
    select channel as from_field
    from "ecom_batchdev"."marts"."fct_transactions"
    where channel is not null
),

parent as (
    select channel as to_field
    from "ecom_batchdev"."marts"."dim_channel"
)

select
    from_field

from child
left join parent
    on child.from_field = parent.to_field

where parent.to_field is null


