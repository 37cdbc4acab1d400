{#- The interest rule of the data contract, in one place for the model and its tests.
    Rates are fractions (0.0150 = 1.5%), DECIMAL(6,4). -#}
{% macro interest_rate(balance_amount, has_loan) -%}
    cast(
        case
            when {{ balance_amount }} < 10000.00 then 0.0100
            when {{ balance_amount }} < 20000.00 then 0.0150
            else 0.0200
        end
        + case when {{ has_loan }} then 0.0050 else 0.0000 end
    as decimal(6, 4))
{%- endmacro %}

{#- balance x rate exactly, then half away from zero to cents. The product is widened first:
    DECIMAL(18,2) x DECIMAL(6,4) would otherwise keep width 18 and overflow near the top of
    the balance range. -#}
{% macro annual_interest(balance_amount, rate) -%}
    cast(round(cast({{ balance_amount }} as decimal(38, 2)) * {{ rate }}, 2) as decimal(18, 2))
{%- endmacro %}
