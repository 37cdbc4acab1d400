{#- Fails on rows where the SQL expression is false, as dbt_utils.expression_is_true
    (on a column, the expression is appended to it: `column_name expression`). Failing rows
    name the key: key_column when given, else every column of the row. -#}
{% test expression_is_true(model, expression, column_name=none, key_column=none) %}
    {{ return(adapter.dispatch('test_expression_is_true', 'ledgerflow')(
        model, expression, column_name, key_column
    )) }}
{% endtest %}
