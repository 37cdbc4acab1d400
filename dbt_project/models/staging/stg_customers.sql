-- Customers that passed every rule, cleaned: the open versions without a reason.

with

validated_customers as (

    select * from {{ current_versions(ref('base_customers_validated')) }}

),

final as (

    select
        customer_id,
        customer_name,
        has_loan,
        _source_file

    from validated_customers
    where quarantine_reason is null

)

select * from final
