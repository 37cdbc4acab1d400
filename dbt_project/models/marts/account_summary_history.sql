-- Every version of every account_summary row: the mart's history, one version per change
-- of its values. A run compares only the accounts whose inputs changed (an account's
-- inputs include its customer's loan flag and whether the customer passes); accounts
-- that leave the source, or are quarantined, are closed. account_summary is its open
-- versions, so after any sequence of deliveries it equals a full rebuild from the
-- latest one, calculated_at (the open version's valid_from) aside.
-- depends_on: {{ ref('accounts_snapshot') }}
-- depends_on: {{ ref('customers_snapshot') }}
{{ versioned_config('account_id') }}

with

savings_accounts as (

    select * from {{ ref('int_savings_accounts_interest_calculated') }}

),

{% if is_incremental() %}

changed_customers as (

    {{ changed_rows(ref('customers_snapshot'), 'customer_id') }}

),

changed_accounts as (

    {{ changed_rows(ref('accounts_snapshot'), 'account_id') }}

),

affected_accounts as (

    select account_id from changed_accounts
    union
    select account_id from {{ current_versions(ref('accounts_snapshot')) }}
    where customer_id in (select changed.customer_id from changed_customers as changed)
    union
    select account_id from {{ current_versions(this) }}
    where {{ full_scope() }}
    union
    select account_id from savings_accounts
    where {{ full_scope() }}

),

{% endif %}

proposed as (

    select
        account_id,
        customer_id,
        original_balance_amount,
        interest_rate_pct,
        annual_interest_amount,
        new_balance_amount

    from savings_accounts

),

{{ versioned_changes(
    'proposed',
    'account_id',
    ['customer_id', 'original_balance_amount', 'interest_rate_pct', 'annual_interest_amount',
     'new_balance_amount'],
    affected='affected_accounts',
) }}

select * from versions_to_write
