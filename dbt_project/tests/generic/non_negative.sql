{#- Fails on rows where the column is below zero (amounts, balances). NULL is left to
    not_null. Failing rows name the key (key_column, else the column itself). -#}
{% test non_negative(model, column_name, key_column=none) %}
    {{ return(adapter.dispatch('test_non_negative', 'ledgerflow')(
        model, column_name, key_column
    )) }}
{% endtest %}
