-- Every delivered account row, parsed, with the first quarantine reason that applies
-- (NULL when it passes). The last two reasons need the customers file, which is why this
-- staging model, unusually, joins: quarantine is decided in staging by contract.

with

accounts as (

    select * from {{ source('ledgerflow', 'accounts') }}

),

validated_customers as (

    select * from {{ ref('base_customers_validated') }}

),

cleaned as (

    select
        accountid as raw_account_id,
        customerid as raw_customer_id,
        balance as raw_balance,
        accounttype as raw_account_type,
        {{ clean_text('accountid') }} as account_id,
        {{ clean_text('customerid') }} as customer_id_text,
        {{ clean_text('balance') }} as balance_text,
        lower({{ clean_text('accounttype') }}) as account_type,
        _source_file,
        _source_line,
        _loaded_at

    from accounts

),

parsed as (

    select
        *,
        {{ parse_positive_bigint('customer_id_text') }} as customer_id,
        {{ parse_money('balance_text') }} as balance_amount

    from cleaned

),

row_reasons as (

    select
        *,
        case
            when account_id = '' then 'missing_account_id'
            when customer_id_text = '' then 'missing_customer_id'
            when customer_id is null then 'invalid_customer_id'
            when {{ is_missing_money('balance_text') }} then 'missing_balance'
            when balance_amount is null then 'invalid_balance'
            when balance_amount < 0 then 'negative_balance'
            when account_type = '' then 'missing_account_type'
            when account_type not in ('savings', 'checking') then 'invalid_account_type'
        end as row_reason

    from parsed

),

-- Duplicates count only rows that passed every earlier rule, by the trimmed id text.
passing_rows_per_id as (

    select
        *,
        sum(case when row_reason is null then 1 else 0 end)
            over (partition by account_id)
            as passing_rows_with_account_id

    from row_reasons

),

duplicate_reasons as (

    select
        *,
        coalesce(
            row_reason,
            case when passing_rows_with_account_id > 1 then 'duplicate_account_id' end
        ) as own_reason

    from passing_rows_per_id

),

-- Any customers.csv row whose id parses to this id, passed or not.
delivered_customer_ids as (

    select distinct customer_id
    from validated_customers
    where customer_id is not null

),

passed_customer_ids as (

    select customer_id
    from validated_customers
    where quarantine_reason is null

),

final as (

    select
        duplicate_reasons.raw_account_id,
        duplicate_reasons.raw_customer_id,
        duplicate_reasons.raw_balance,
        duplicate_reasons.raw_account_type,
        duplicate_reasons.account_id,
        duplicate_reasons.customer_id,
        duplicate_reasons.account_type,
        duplicate_reasons.balance_amount,
        coalesce(
            duplicate_reasons.own_reason,
            case
                when passed_customer_ids.customer_id is not null then null
                when delivered_customer_ids.customer_id is not null then 'customer_quarantined'
                else 'unknown_customer'
            end
        ) as quarantine_reason,
        duplicate_reasons._source_file,
        duplicate_reasons._source_line,
        duplicate_reasons._loaded_at

    from duplicate_reasons
    left join passed_customer_ids
        on duplicate_reasons.customer_id = passed_customer_ids.customer_id
    left join delivered_customer_ids
        on duplicate_reasons.customer_id = delivered_customer_ids.customer_id

)

select * from final
