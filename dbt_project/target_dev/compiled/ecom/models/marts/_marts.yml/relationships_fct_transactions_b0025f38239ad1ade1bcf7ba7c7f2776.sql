
    
    

with child as (
    select merchant_id as from_field
    from "ecom_batchdev"."marts"."fct_transactions"
    where merchant_id is not null
),

parent as (
    select merchant_id as to_field
    from "ecom_batchdev"."marts"."dim_merchant"
)

select
    from_field

from child
left join parent
    on child.from_field = parent.to_field

where parent.to_field is null


