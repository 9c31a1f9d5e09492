-- Sales channels of the event contract (vars.contract_enums.channel).
{% for channel in var('contract_enums')['channel'] %}
select
    '{{ channel }}'::text as channel,
    '{{ channel | replace("_", " ") | title }}'::text as display_name,
    {{ 'true' if channel in ['web', 'mobile_app'] else 'false' }} as is_online
{% if not loop.last %}union all{% endif %}
{% endfor %}
