-- SCD Type 2 history of the accounts that passed staging: a change in a business column
-- closes the open version and opens a new one; an account that stops passing (or leaves)
-- is closed, never deleted. Only the accounts of records this run changed are compared.
-- depends_on: {{ ref('base_accounts_validated') }}
{{ versioned_config('account_id') }}

with

passed_accounts as (

    select * from {{ ref('stg_accounts') }}

),

{% if is_incremental() %}

changed_records as (

    {{ changed_rows(ref('base_accounts_validated'), 'account_id') }}

),

affected_accounts as (

    select account_id from changed_records
    where account_id <> ''
    union
    select account_id from {{ current_versions(this) }}
    where {{ full_scope() }}
    union
    select account_id from passed_accounts
    where {{ full_scope() }}

),

{% endif %}

proposed as (

    select
        account_id,
        customer_id,
        account_type,
        balance_amount

    from passed_accounts

),

{{ versioned_changes(
    'proposed',
    'account_id',
    ['customer_id', 'account_type', 'balance_amount'],
    affected='affected_accounts',
) }}

select * from versions_to_write
