-- Payment methods of the event contract (vars.contract_enums.payment_method).
{% set wallets = ['paypal', 'apple_pay', 'google_pay'] %}
{% for method in var('contract_enums')['payment_method'] %}
select
    '{{ method }}'::text as payment_method,
    '{{ method | replace("_", " ") | title }}'::text as display_name,
    {{ 'true' if method in wallets else 'false' }} as is_wallet,
    {{ 'true' if method == 'card' else 'false' }} as is_card
{% if not loop.last %}union all{% endif %}
{% endfor %}
