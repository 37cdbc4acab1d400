-- The current version of every account that passed staging, with its customer's loan flag.
-- Staging already quarantined accounts whose customer did not pass, so the join is inner.

with

accounts_snapshot as (

    select * from {{ current_versions(ref('accounts_snapshot')) }}

),

customers as (

    select * from {{ ref('int_customers_current') }}

),

current_accounts as (

    select
        account_id,
        customer_id,
        account_type,
        balance_amount

    from accounts_snapshot

),

final as (

    select
        current_accounts.account_id,
        current_accounts.customer_id,
        current_accounts.account_type,
        current_accounts.balance_amount,
        customers.has_loan

    from current_accounts
    inner join customers
        on current_accounts.customer_id = customers.customer_id

)

select * from final
