-- Interest for every savings account: rate by balance tier plus the loan bonus, the
-- amount exact in DECIMAL and rounded half away from zero to cents.

with

accounts as (

    select * from {{ ref('int_accounts_joined_to_customers') }}

),

savings_accounts as (

    select
        account_id,
        customer_id,
        balance_amount as original_balance_amount,
        {{ interest_rate('balance_amount', 'has_loan') }} as interest_rate_pct

    from accounts
    where account_type = 'savings'

),

interest_calculated as (

    select
        account_id,
        customer_id,
        original_balance_amount,
        interest_rate_pct,
        {{ annual_interest('original_balance_amount', 'interest_rate_pct') }}
            as annual_interest_amount

    from savings_accounts

),

final as (

    select
        account_id,
        customer_id,
        original_balance_amount,
        interest_rate_pct,
        annual_interest_amount,
        cast(original_balance_amount + annual_interest_amount as decimal(18, 2))
            as new_balance_amount

    from interest_calculated

)

select * from final
