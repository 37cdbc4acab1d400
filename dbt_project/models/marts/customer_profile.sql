-- One row per customer that passed staging, with its accounts and savings totals: the
-- open versions of customer_profile_history.

with

customer_profile_history as (

    select * from {{ current_versions(ref('customer_profile_history')) }}

),

final as (

    select
        customer_id,
        customer_name,
        has_loan,
        savings_account_count,
        checking_account_count,
        total_savings_balance_amount,
        total_annual_interest_amount

    from customer_profile_history

)

select * from final
