-- One row per savings account that passed staging, with its interest: the open versions
-- of account_summary_history. calculated_at is when the row's values last changed.

with

account_summary_history as (

    select * from {{ current_versions(ref('account_summary_history')) }}

),

final as (

    select
        account_id,
        customer_id,
        original_balance_amount,
        interest_rate_pct,
        annual_interest_amount,
        new_balance_amount,
        valid_from as calculated_at

    from account_summary_history

)

select * from final
