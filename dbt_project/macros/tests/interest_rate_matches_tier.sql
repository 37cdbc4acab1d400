{#- interest_rate_matches_tier asserts column_name = interest_rate(balance, has_loan) on
    every row, with has_loan from the row's customer in `customers` (joined on
    customer_key). This catches a stale rate, such as an incremental run that missed a
    customer's loan flip, as well as a rule coded differently from the shared macro.
    Each failing row: the key column(s), the customer, balance, loan flag, the rate held
    and the rate expected (NULL when the customer is missing). -#}
{% macro default__test_interest_rate_matches_tier(
    model, column_name, balance_column, customers, customer_key, has_loan_column, key_column
) %}

with

rates as (

    select
        {{ failing_row_columns(key_column, customer_key) | join(',\n        ') }},
        {{ balance_column }} as balance_amount,
        {{ column_name }} as interest_rate_pct

    from {{ model }}

),

customers as (

    select
        {{ customer_key }} as customer_key,
        {{ has_loan_column }} as has_loan

    from {{ customers }}

),

expected_rates as (

    select
        rates.*,
        customers.has_loan,
        case
            when customers.customer_key is not null
                then {{ interest_rate('rates.balance_amount', 'customers.has_loan') }}
        end as expected_interest_rate_pct

    from rates
    left join customers
        on rates.{{ customer_key }} = customers.customer_key

),

validation_errors as (

    select * from expected_rates
    where expected_interest_rate_pct is null
        or interest_rate_pct <> expected_interest_rate_pct

)

select * from validation_errors

{% endmacro %}
