
      update "ecom_batchdev"."snapshots"."snap_reference__customers"
    set dbt_valid_to = DBT_INTERNAL_SOURCE.dbt_valid_to
    from "snap_reference__customers__dbt_tmp164145853221" as DBT_INTERNAL_SOURCE
    where DBT_INTERNAL_SOURCE.dbt_scd_id::text = "ecom_batchdev"."snapshots"."snap_reference__customers".dbt_scd_id::text
      and DBT_INTERNAL_SOURCE.dbt_change_type::text in ('update'::text, 'delete'::text)
      
        and "ecom_batchdev"."snapshots"."snap_reference__customers".dbt_valid_to is null;
      


    insert into "ecom_batchdev"."snapshots"."snap_reference__customers" ("customer_id", "first_name", "signup_at", "home_country", "home_city", "home_lat", "home_lon", "currency", "value_tier", "preferred_payment", "preferred_channel", "n_devices", "favourite_category", "updated_at", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to", "dbt_scd_id")
    select DBT_INTERNAL_SOURCE."customer_id",DBT_INTERNAL_SOURCE."first_name",DBT_INTERNAL_SOURCE."signup_at",DBT_INTERNAL_SOURCE."home_country",DBT_INTERNAL_SOURCE."home_city",DBT_INTERNAL_SOURCE."home_lat",DBT_INTERNAL_SOURCE."home_lon",DBT_INTERNAL_SOURCE."currency",DBT_INTERNAL_SOURCE."value_tier",DBT_INTERNAL_SOURCE."preferred_payment",DBT_INTERNAL_SOURCE."preferred_channel",DBT_INTERNAL_SOURCE."n_devices",DBT_INTERNAL_SOURCE."favourite_category",DBT_INTERNAL_SOURCE."updated_at",DBT_INTERNAL_SOURCE."dbt_updated_at",DBT_INTERNAL_SOURCE."dbt_valid_from",DBT_INTERNAL_SOURCE."dbt_valid_to",DBT_INTERNAL_SOURCE."dbt_scd_id"
    from "snap_reference__customers__dbt_tmp164145853221" as DBT_INTERNAL_SOURCE
    where DBT_INTERNAL_SOURCE.dbt_change_type::text = 'insert'::text;

  