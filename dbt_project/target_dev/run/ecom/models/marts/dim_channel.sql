
  
    

  create  table "ecom_batchdev"."marts"."dim_channel__dbt_tmp"
  
  
    as
  
  (
    -- Sales channels of the event contract (vars.contract_enums.channel).

select
    'web'::text as channel,
    'Web'::text as display_name,
    true as is_online
union all

select
    'mobile_app'::text as channel,
    'Mobile App'::text as display_name,
    true as is_online
union all

select
    'pos'::text as channel,
    'Pos'::text as display_name,
    false as is_online
union all

select
    'phone'::text as channel,
    'Phone'::text as display_name,
    false as is_online


  );
  