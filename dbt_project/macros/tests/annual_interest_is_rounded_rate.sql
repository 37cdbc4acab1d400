{#- annual_interest_is_rounded_rate asserts that column_name is balance x rate rounded half
    away from zero to cents, restated in whole numbers rather than with the model's
    rounding: with c = the amount in cents, b = the balance in cents and r = the rate in
    basis points (0.0150 = 150), c is right exactly when
        c x 10000 - 5000 <= b x r < c x 10000 + 5000
    (for the non-negative amounts this layer holds). DOUBLE arithmetic or banker's
    rounding shows up here: 14.50 x 0.0100 must give 0.15, not 0.14. Each failing row: the
    key column(s), balance, rate, the amount held. -#}
{% macro default__test_annual_interest_is_rounded_rate(
    model, column_name, balance_column, rate_column, key_column
) %}

{%- set whole = exact_integer_type() %}

with

amounts as (

    select
        {{ failing_row_columns(key_column) | join(',\n        ') }},
        {{ balance_column }} as balance_amount,
        {{ rate_column }} as interest_rate_pct,
        {{ column_name }} as annual_interest_amount,
        cast(cast({{ balance_column }} as decimal(38, 2)) * 100 as {{ whole }}) as balance_cents,
        cast(cast({{ rate_column }} as decimal(38, 4)) * 10000 as {{ whole }}) as rate_units,
        cast(cast({{ column_name }} as decimal(38, 2)) * 100 as {{ whole }})
            as annual_interest_cents

    from {{ model }}

),

validation_errors as (

    select
        {{ failing_row_columns(key_column) | join(',\n        ') }},
        balance_amount,
        interest_rate_pct,
        annual_interest_amount

    from amounts
    where not (
        annual_interest_cents * 10000 - 5000 <= balance_cents * rate_units
        and balance_cents * rate_units < annual_interest_cents * 10000 + 5000
    )

)

select * from validation_errors

{% endmacro %}
