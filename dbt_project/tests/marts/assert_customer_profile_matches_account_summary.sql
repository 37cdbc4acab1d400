-- Asserts that each customer's savings count and totals in customer_profile equal its rows
-- in account_summary, and that every account_summary customer has a profile. Catches an
-- account_summary that kept a stale row or missed one (its count no longer matches the
-- savings accounts that passed) and a join that fans out the totals.
-- Failing rows: customer_id, then both sides. On tonight's change set
-- (macros/change_sets.sql) only the customers whose profile or savings changed tonight.
{%- set profiles_changed = changed_keys('model.ledgerflow.customer_profile') if execute else none %}

with

{% if profiles_changed is not none -%}
-- {{ change_set_marker() }}
checked_customers as (

    {{ profiles_changed['sql'] }}
    union all
    {{ changed_values('account_summary_history', 'customer_id') }}

),

customer_profile as (

    select * from {{ ref('customer_profile') }}
    where customer_id in (select checked.customer_id from checked_customers as checked)

),

account_summary as (

    select * from {{ ref('account_summary') }}
    where customer_id in (select checked.customer_id from checked_customers as checked)

),
{%- else %}
customer_profile as (

    select * from {{ ref('customer_profile') }}

),

account_summary as (

    select * from {{ ref('account_summary') }}

),
{%- endif %}

summary_totals as (

    select
        customer_id,
        count(*) as savings_account_count,
        sum(original_balance_amount) as total_savings_balance_amount,
        sum(annual_interest_amount) as total_annual_interest_amount

    from account_summary
    group by customer_id

),

compared as (

    select
        coalesce(customer_profile.customer_id, summary_totals.customer_id) as customer_id,
        customer_profile.savings_account_count as profile_savings_count,
        coalesce(summary_totals.savings_account_count, 0) as summary_savings_count,
        customer_profile.total_savings_balance_amount as profile_savings_total,
        coalesce(summary_totals.total_savings_balance_amount, 0) as summary_savings_total,
        customer_profile.total_annual_interest_amount as profile_interest_total,
        coalesce(summary_totals.total_annual_interest_amount, 0) as summary_interest_total

    from customer_profile
    full outer join summary_totals
        on customer_profile.customer_id = summary_totals.customer_id

),

validation_errors as (

    select * from compared
    where
        profile_savings_count is distinct from summary_savings_count
        or profile_savings_total is distinct from summary_savings_total
        or profile_interest_total is distinct from summary_interest_total

)

select * from validation_errors
