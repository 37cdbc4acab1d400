{#- annual_interest_is_rounded_rate asserts column_name = annual_interest(balance, rate):
    DECIMAL arithmetic, half away from zero to cents. DOUBLE arithmetic or banker's
    rounding shows up here (14.50 x 0.0100 must give 0.15, not 0.14). Each failing row:
    the key column(s), balance, rate, the amount held and the amount expected. -#}
{% macro default__test_annual_interest_is_rounded_rate(
    model, column_name, balance_column, rate_column, key_column
) %}

with

amounts as (

    select
        {{ failing_row_columns(key_column) | join(',\n        ') }},
        {{ balance_column }} as balance_amount,
        {{ rate_column }} as interest_rate_pct,
        {{ column_name }} as annual_interest_amount,
        {{ annual_interest(balance_column, rate_column) }} as expected_annual_interest_amount

    from {{ model }}

),

validation_errors as (

    select * from amounts
    where annual_interest_amount <> expected_annual_interest_amount

)

select * from validation_errors

{% endmacro %}
