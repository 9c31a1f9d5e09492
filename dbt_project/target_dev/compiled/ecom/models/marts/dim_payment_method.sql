-- Payment methods of the event contract (vars.contract_enums.payment_method).


select
    'card'::text as payment_method,
    'Card'::text as display_name,
    false as is_wallet,
    true as is_card
union all

select
    'paypal'::text as payment_method,
    'Paypal'::text as display_name,
    true as is_wallet,
    false as is_card
union all

select
    'apple_pay'::text as payment_method,
    'Apple Pay'::text as display_name,
    true as is_wallet,
    false as is_card
union all

select
    'google_pay'::text as payment_method,
    'Google Pay'::text as display_name,
    true as is_wallet,
    false as is_card
union all

select
    'bank_transfer'::text as payment_method,
    'Bank Transfer'::text as display_name,
    false as is_wallet,
    false as is_card
union all

select
    'gift_card'::text as payment_method,
    'Gift Card'::text as display_name,
    false as is_wallet,
    false as is_card

