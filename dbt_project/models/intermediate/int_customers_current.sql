-- The current version of every customer that passed staging, read from the SCD2 history
-- so the marts and the history can never disagree.

with

customers_snapshot as (

    select * from {{ current_versions(ref('customers_snapshot')) }}

),

final as (

    select
        customer_id,
        customer_name,
        has_loan

    from customers_snapshot

)

select * from final
