-- Payment terminals / web checkouts (type 1) plus inferred members for terminal ids seen only in the facts.
with reference as (
    select terminal_id, merchant_id, terminal_kind, terminal_city, terminal_country, terminal_lat, terminal_lon,
        false as is_inferred
    from "ecom_batchdev"."staging"."stg_reference__terminals"
),

inferred as (
    select distinct on (f.terminal_id)
        f.terminal_id, f.merchant_id, null::text, null::text, null::text, null::double precision,
        null::double precision, true
    from "ecom_batchdev"."marts"."fct_transactions" as f
    where not exists (select 1 from reference as r where r.terminal_id = f.terminal_id)
    order by f.terminal_id, f.event_time
)

select * from reference
union all
select * from inferred