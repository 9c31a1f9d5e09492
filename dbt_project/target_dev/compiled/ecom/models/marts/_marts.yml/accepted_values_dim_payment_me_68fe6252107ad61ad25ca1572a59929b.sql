
    
    

with all_values as (

    select
        payment_method as value_field,
        count(*) as n_records

    from "ecom_batchdev"."marts"."dim_payment_method"
    group by payment_method

)

select *
from all_values
where value_field not in (
    'card','paypal','apple_pay','google_pay','bank_transfer','gift_card'
)


