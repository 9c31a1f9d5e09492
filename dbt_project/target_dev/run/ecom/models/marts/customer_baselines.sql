
  
    

  create  table "ecom_batchdev"."marts"."customer_baselines__dbt_tmp"
  
  
    as
  
  (
    
-- Per-customer normal behaviour over the whole master dataset (the batch layer's slow-moving truth).
-- The speed layer joins it stream-static to score how unusual each new transaction is; column names are
-- an interface (streaming/speed), keep them.
with tx as (
    select customer_id, amount::double precision as amount, event_time, device_id, ip_country, ip_lat, ip_lon
    from "ecom_batchdev"."marts"."fct_transactions"
),

stats as (
    select
        customer_id,
        count(*) as n_transactions,
        -- one sort per customer for both quantiles
        percentile_cont(array[0.5, 0.95]) within group (order by amount) as amount_quantiles,
        avg(amount) as mean_amount,
        coalesce(stddev_samp(amount), 0) as std_amount,
        min(event_time) as first_seen_at,
        max(event_time) as last_seen_at,
        mode() within group (order by extract(hour from event_time at time zone 'UTC')) as typical_hour,
        avg(ip_lat) as mean_ip_lat,
        avg(ip_lon) as mean_ip_lon
    from tx
    group by customer_id
),

device_rank as (
    select
        customer_id,
        device_id,
        row_number() over (partition by customer_id order by count(*) desc, device_id) as rn
    from tx
    group by customer_id, device_id
),

country_rank as (
    select
        customer_id,
        ip_country,
        row_number() over (partition by customer_id order by count(*) desc, ip_country) as rn
    from tx
    where ip_country is not null
    group by customer_id, ip_country
),

devices as (
    select customer_id, array_agg(device_id order by rn) as usual_device_ids
    from device_rank
    where rn <= 3
    group by customer_id
),

countries as (
    select customer_id, array_agg(ip_country order by rn) as usual_countries
    from country_rank
    where rn <= 3
    group by customer_id
),

home as (
    select customer_id, home_lat, home_lon
    from "ecom_batchdev"."marts"."dim_customer"
    where is_current and not is_inferred
)

select
    s.customer_id,
    s.n_transactions,
    s.amount_quantiles[1] as median_amount,
    s.amount_quantiles[2] as p95_amount,
    s.mean_amount,
    s.std_amount,
    s.n_transactions
        / greatest(1.0, extract(epoch from (s.last_seen_at - s.first_seen_at)) / 86400.0) as avg_tx_per_day,
    coalesce(d.usual_device_ids, array[]::text[]) as usual_device_ids,
    coalesce(c.usual_countries, array[]::text[]) as usual_countries,
    coalesce(h.home_lat, s.mean_ip_lat) as home_lat,
    coalesce(h.home_lon, s.mean_ip_lon) as home_lon,
    s.typical_hour::integer as typical_hour,
    s.first_seen_at,
    s.last_seen_at,
    now() as computed_at
from stats as s
left join devices as d on d.customer_id = s.customer_id
left join countries as c on c.customer_id = s.customer_id
left join home as h on h.customer_id = s.customer_id
  );
  