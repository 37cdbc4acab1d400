-- Every delivered customer row, parsed, with the first quarantine reason that applies
-- (NULL when it passes). stg_customers and quarantine_customers both read this.

with

customers as (

    select * from {{ source('ledgerflow', 'customers') }}

),

cleaned as (

    select
        customerid as raw_customer_id,
        name as raw_name,
        hasloan as raw_has_loan,
        {{ clean_text('customerid') }} as customer_id_text,
        {{ clean_text('name') }} as customer_name_text,
        {{ clean_text('hasloan') }} as has_loan_text,
        _source_file,
        _source_line,
        _loaded_at

    from customers

),

parsed as (

    select
        *,
        {{ parse_positive_bigint('customer_id_text') }} as customer_id,
        {{ collapse_whitespace('customer_name_text') }} as customer_name,
        {{ parse_has_loan('has_loan_text') }} as has_loan

    from cleaned

),

row_reasons as (

    select
        *,
        case
            when customer_id_text = '' then 'missing_customer_id'
            when customer_id is null then 'invalid_customer_id'
            when customer_name_text = '' then 'missing_customer_name'
            when has_loan_text = '' then 'missing_has_loan'
            when has_loan is null then 'invalid_has_loan'
        end as row_reason

    from parsed

),

-- Duplicates count only rows that passed every earlier rule, by the parsed id, and all
-- of them are quarantined: which one is right needs a person.
passing_rows_per_id as (

    select
        *,
        sum(case when row_reason is null then 1 else 0 end)
            over (partition by customer_id)
            as passing_rows_with_customer_id

    from row_reasons

),

final as (

    select
        raw_customer_id,
        raw_name,
        raw_has_loan,
        customer_id,
        customer_name,
        has_loan,
        coalesce(
            row_reason,
            case when passing_rows_with_customer_id > 1 then 'duplicate_customer_id' end
        ) as quarantine_reason,
        _source_file,
        _source_line,
        _loaded_at

    from passing_rows_per_id

)

select * from final
