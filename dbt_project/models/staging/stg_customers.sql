with

validated_customers as (

    select * from {{ ref('base_customers_validated') }}

),

final as (

    select
        customer_id,
        customer_name,
        has_loan,
        _source_file,
        _source_line,
        _loaded_at

    from validated_customers
    where quarantine_reason is null

)

select * from final
