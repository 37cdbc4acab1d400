{#- interest_rate_matches_tier asserts that column_name is the rate the contract's tier
    table gives for the row's balance, plus loan_bonus when the row's customer (from
    `customers`, joined on customer_key) has a loan. The tiers are the test's own literal
    restatement of the contract ([lower bound, rate] pairs), not the model's macro, so a
    wrong rule in the model fails here; a stale rate (an incremental run that missed a
    customer's loan flip) fails too. Each failing row: the key column(s), the customer,
    balance, loan flag, the rate held and the rate expected (NULL when the customer is
    missing). On tonight's change set (macros/change_sets.sql) it checks the rows changed
    tonight and every row of a customer changed tonight, and reads only their customers. -#}
{% macro default__test_interest_rate_matches_tier(
    model, column_name, balance_column, customers, tiers, loan_bonus,
    customer_key, has_loan_column, key_column
) %}

with

{%- set columns = failing_row_columns(key_column, customer_key) + [
    balance_column ~ ' as balance_amount', column_name ~ ' as interest_rate_pct'
] %}

rates as (

    select distinct * from (
        select
            {{ columns | join(',\n            ') }}

        from {{ model }}
        {{ children_of_changed_parents(columns, customer_key, customers, customer_key) }}
    ) as checked_rates

),

customers as (

    select
        {{ customer_key }} as customer_key,
        {{ has_loan_column }} as has_loan

    from {{ customers }}
    where {{ customer_key }} in (select rates.{{ customer_key }} from rates)

),

tiers as (

    {% for lower_bound, rate in tiers -%}
    select
        cast({{ lower_bound }} as decimal(18, 2)) as lower_bound_amount,
        {%- if loop.last %}
        cast(null as decimal(18, 2)) as upper_bound_amount,
        {%- else %}
        cast({{ tiers[loop.index][0] }} as decimal(18, 2)) as upper_bound_amount,
        {%- endif %}
        cast({{ rate }} as decimal(6, 4)) as base_rate_pct
    {% if not loop.last %}union all
    {% endif %}
    {%- endfor %}

),

expected_rates as (

    select
        rates.*,
        customers.has_loan,
        case
            when customers.customer_key is not null
                then tiers.base_rate_pct
                + case when customers.has_loan then {{ loan_bonus }} else 0 end
        end as expected_interest_rate_pct

    from rates
    left join customers
        on rates.{{ customer_key }} = customers.customer_key
    left join tiers
        on rates.balance_amount >= tiers.lower_bound_amount
        and (tiers.upper_bound_amount is null or rates.balance_amount < tiers.upper_bound_amount)

),

validation_errors as (

    select * from expected_rates
    where expected_interest_rate_pct is null
        or interest_rate_pct <> expected_interest_rate_pct

)

select * from validation_errors

{% endmacro %}
