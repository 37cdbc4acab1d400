-- Accounts that passed every rule, cleaned: the open versions without a reason.

with

validated_accounts as (

    select * from {{ current_versions(ref('base_accounts_validated')) }}

),

final as (

    select
        account_id,
        customer_id,
        account_type,
        balance_amount,
        _source_file

    from validated_accounts
    where quarantine_reason is null

)

select * from final
