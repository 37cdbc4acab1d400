with

validated_accounts as (

    select * from {{ ref('base_accounts_validated') }}

),

final as (

    select
        account_id,
        customer_id,
        account_type,
        balance_amount,
        _source_file,
        _source_line,
        _loaded_at

    from validated_accounts
    where quarantine_reason is null

)

select * from final
