-- One row per savings account that passed staging, with its interest.
--
-- Incremental: a run writes only the accounts whose values changed (a balance, a type,
-- the customer's loan flag or whether the customer still passes all flow into these
-- values through the intermediate layer), so unchanged rows keep their calculated_at.
-- Accounts that left the source, or were quarantined, are removed by the post-hook:
-- a merge alone never removes keys. After any sequence of deliveries this equals a full
-- rebuild from the latest one, calculated_at aside.
{{
    config(
        materialized='incremental',
        unique_key='account_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook=[
            "delete from {{ this }} where account_id not in (select account_id from {{ ref('int_savings_accounts_interest_calculated') }})"
        ],
    )
}}

with

savings_accounts as (

    select * from {{ ref('int_savings_accounts_interest_calculated') }}

),

{% if is_incremental() %}

published as (

    select * from {{ this }}

),

changed_accounts as (

    select savings_accounts.*

    from savings_accounts
    left join published
        on savings_accounts.account_id = published.account_id
    where
        published.account_id is null
        or savings_accounts.customer_id <> published.customer_id
        or savings_accounts.original_balance_amount <> published.original_balance_amount
        or savings_accounts.interest_rate_pct <> published.interest_rate_pct
        or savings_accounts.annual_interest_amount <> published.annual_interest_amount
        or savings_accounts.new_balance_amount <> published.new_balance_amount

),

{% else %}

changed_accounts as (

    select * from savings_accounts

),

{% endif %}

final as (

    select
        account_id,
        customer_id,
        original_balance_amount,
        interest_rate_pct,
        annual_interest_amount,
        new_balance_amount,
        {{ run_timestamp() }} as calculated_at

    from changed_accounts

)

select * from final
