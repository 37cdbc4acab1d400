-- Every version of every customer_profile row. A run recomputes only the customers whose
-- inputs changed: the customer itself, or one of its accounts (either side of an account
-- that moved between customers), or one of its account_summary rows; a --full-refresh,
-- every customer, with no list of them to filter by. Counts and totals come from one
-- aggregate over the accounts and the savings rows together, and meet the customers in
-- one join: a shape that spills (with an aggregate and two joins feeding one pipeline, a
-- full refresh at 10M accounts ran out of a 1.5 GB memory ceiling).
-- depends_on: {{ ref('customers_snapshot') }}
-- depends_on: {{ ref('accounts_snapshot') }}
{{ versioned_config('customer_id') }}

with

customers as (

    select * from {{ ref('int_customers_current') }}

),

-- Staging quarantines the accounts of a customer that did not pass, so every current
-- account has a current customer.
accounts as (

    select * from {{ current_versions(ref('accounts_snapshot')) }}

),

{% if is_incremental() and not scope_is_full() %}

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

customers_to_profile as (

    select * from customers
    where customer_id in (select affected.customer_id from affected_customers as affected)

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

customers_to_profile as (

    select * from customers

),

accounts_to_count as (

    select * from accounts

),

savings_to_total as (

    select * from {{ current_versions(ref('account_summary_history')) }}

),

{% endif %}

-- Totals are as wide as DECIMAL goes: a customer may hold many accounts at the
-- contract's largest balance (10^15 each), past what DECIMAL(18,2) holds.
account_rows as (

    select
        customer_id,
        case when account_type = 'savings' then 1 else 0 end as is_savings,
        case when account_type = 'checking' then 1 else 0 end as is_checking,
        cast(null as decimal(38, 2)) as balance_amount,
        cast(null as decimal(38, 2)) as interest_amount

    from accounts_to_count
    union all
    select
        customer_id,
        0 as is_savings,
        0 as is_checking,
        cast(original_balance_amount as decimal(38, 2)) as balance_amount,
        cast(annual_interest_amount as decimal(38, 2)) as interest_amount

    from savings_to_total

),

per_customer as (

    select
        customer_id,
        sum(is_savings) as savings_account_count,
        sum(is_checking) as checking_account_count,
        sum(balance_amount) as total_savings_balance_amount,
        sum(interest_amount) as total_annual_interest_amount

    from account_rows
    group by customer_id

),

proposed as (

    select
        customers_to_profile.customer_id,
        customers_to_profile.customer_name,
        customers_to_profile.has_loan,
        cast(coalesce(per_customer.savings_account_count, 0) as bigint)
            as savings_account_count,
        cast(coalesce(per_customer.checking_account_count, 0) as bigint)
            as checking_account_count,
        cast(coalesce(per_customer.total_savings_balance_amount, 0) as decimal(38, 2))
            as total_savings_balance_amount,
        cast(coalesce(per_customer.total_annual_interest_amount, 0) as decimal(38, 2))
            as total_annual_interest_amount

    from customers_to_profile
    left join per_customer
        on customers_to_profile.customer_id = per_customer.customer_id

),

{{ versioned_changes(
    'proposed',
    'customer_id',
    ['customer_name', 'has_loan', 'savings_account_count', 'checking_account_count',
     'total_savings_balance_amount', 'total_annual_interest_amount'],
    affected='affected_customers',
) }}

select * from versions_to_write
