
  
    

  create  table "ecom_batchdev"."marts"."dim_date__dbt_tmp"
  
  
    as
  
  (
    -- Calendar days (UTC) covering every transaction and chargeback date, without gaps.
with bounds as (
    select
        least(
            (select min(event_time) from "ecom_batchdev"."marts"."fct_transactions"),
            (select min(reported_at) from "ecom_batchdev"."staging"."stg_master__chargebacks")
        ) as first_at,
        greatest(
            (select max(event_time) from "ecom_batchdev"."marts"."fct_transactions"),
            (select max(reported_at) from "ecom_batchdev"."staging"."stg_master__chargebacks")
        ) as last_at
),

days as (
    select generate_series(
        coalesce((first_at at time zone 'UTC')::date, current_date),
        coalesce((last_at at time zone 'UTC')::date, current_date),
        interval '1 day'
    )::date as calendar_date
    from bounds
)

select
    (to_char(calendar_date, 'YYYYMMDD'))::integer as date_key,
    calendar_date,
    extract(year from calendar_date)::integer as year,
    extract(quarter from calendar_date)::integer as quarter,
    extract(month from calendar_date)::integer as month,
    trim(to_char(calendar_date, 'Month')) as month_name,
    extract(week from calendar_date)::integer as iso_week,
    extract(isodow from calendar_date)::integer as iso_day_of_week,
    trim(to_char(calendar_date, 'Day')) as day_name,
    extract(isodow from calendar_date) in (6, 7) as is_weekend,
    date_trunc('month', calendar_date)::date as month_start
from days
  );
  