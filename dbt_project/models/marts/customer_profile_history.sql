-- Every version of every customer_profile row. A run recomputes only the customers whose
-- inputs changed: the customer itself, or one of its accounts (either side of an account
-- that moved between customers), or one of its account_summary rows.
-- depends_on: {{ ref('customers_snapshot') }}
-- depends_on: {{ ref('accounts_snapshot') }}
{{ versioned_config('customer_id') }}

with

customers as (

    select * from {{ ref('int_customers_current') }}

),

accounts as (

    select * from {{ ref('int_accounts_joined_to_customers') }}

),

{% if is_incremental() %}

changed_customers as (

    {{ changed_rows(ref('customers_snapshot'), 'customer_id') }}
    union all
    {{ changed_rows(ref('accounts_snapshot'), 'customer_id') }}
    union all
    {{ changed_rows(ref('account_summary_history'), 'customer_id') }}

),

affected_customers as (

    select customer_id from changed_customers
    union
    select customer_id from {{ current_versions(this) }}
    where {{ full_scope() }}
    union
    select customer_id from customers
    where {{ full_scope() }}

),

accounts_to_count as (

    select * from accounts
    where customer_id in (select affected.customer_id from affected_customers as affected)

),

savings_to_total as (

    select * from {{ current_versions(ref('account_summary_history')) }}
    where customer_id in (select affected.customer_id from affected_customers as affected)

),

{% else %}

accounts_to_count as (

    select * from accounts

),

savings_to_total as (

    select * from {{ current_versions(ref('account_summary_history')) }}

),

{% endif %}

account_counts as (

    select
        customer_id,
        sum(case when account_type = 'savings' then 1 else 0 end) as savings_account_count,
        sum(case when account_type = 'checking' then 1 else 0 end) as checking_account_count

    from accounts_to_count
    group by customer_id

),

-- Totals are as wide as DECIMAL goes: a customer may hold many accounts at the
-- contract's largest balance (10^15 each), past what DECIMAL(18,2) holds.
savings_totals as (

    select
        customer_id,
        sum(cast(original_balance_amount as decimal(38, 2))) as total_savings_balance_amount,
        sum(cast(annual_interest_amount as decimal(38, 2))) as total_annual_interest_amount

    from savings_to_total
    group by customer_id

),

proposed as (

    select
        customers.customer_id,
        customers.customer_name,
        customers.has_loan,
        cast(coalesce(account_counts.savings_account_count, 0) as bigint)
            as savings_account_count,
        cast(coalesce(account_counts.checking_account_count, 0) as bigint)
            as checking_account_count,
        cast(coalesce(savings_totals.total_savings_balance_amount, 0) as decimal(38, 2))
            as total_savings_balance_amount,
        cast(coalesce(savings_totals.total_annual_interest_amount, 0) as decimal(38, 2))
            as total_annual_interest_amount

    from customers
    left join account_counts
        on customers.customer_id = account_counts.customer_id
    left join savings_totals
        on customers.customer_id = savings_totals.customer_id

),

{{ versioned_changes(
    'proposed',
    'customer_id',
    ['customer_name', 'has_loan', 'savings_account_count', 'checking_account_count',
     'total_savings_balance_amount', 'total_annual_interest_amount'],
    affected='affected_customers',
) }}

select * from versions_to_write
