-- One row per customer that passed staging, with its accounts and savings totals.

with

customers as (

    select * from {{ ref('int_customers_current') }}

),

accounts as (

    select * from {{ ref('int_accounts_joined_to_customers') }}

),

account_summary as (

    select * from {{ ref('account_summary') }}

),

account_counts as (

    select
        customer_id,
        sum(case when account_type = 'savings' then 1 else 0 end) as savings_account_count,
        sum(case when account_type = 'checking' then 1 else 0 end) as checking_account_count

    from accounts
    group by customer_id

),

savings_totals as (

    select
        customer_id,
        sum(original_balance_amount) as total_savings_balance_amount,
        sum(annual_interest_amount) as total_annual_interest_amount

    from account_summary
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.customer_name,
        customers.has_loan,
        cast(coalesce(account_counts.savings_account_count, 0) as bigint)
            as savings_account_count,
        cast(coalesce(account_counts.checking_account_count, 0) as bigint)
            as checking_account_count,
        cast(coalesce(savings_totals.total_savings_balance_amount, 0) as decimal(18, 2))
            as total_savings_balance_amount,
        cast(coalesce(savings_totals.total_annual_interest_amount, 0) as decimal(18, 2))
            as total_annual_interest_amount

    from customers
    left join account_counts
        on customers.customer_id = account_counts.customer_id
    left join savings_totals
        on customers.customer_id = savings_totals.customer_id

)

select * from final
