{#- Fails on rows whose annual interest is not balance x rate computed exactly and
    rounded half away from zero to cents, checked in whole cents and basis points (not with
    the model's own annual_interest macro). -#}
{% test annual_interest_is_rounded_rate(
    model, column_name, balance_column, rate_column, key_column='account_id'
) %}
    {{ return(adapter.dispatch('test_annual_interest_is_rounded_rate', 'ledgerflow')(
        model, column_name, balance_column, rate_column, key_column
    )) }}
{% endtest %}
