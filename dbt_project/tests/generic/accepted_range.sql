{#- Fails on rows where the column lies outside [min_value, max_value] (bounds optional;
    inclusive by default, exclusive with inclusive: false), as dbt_utils.accepted_range.
    Failing rows name the key (key_column, else the column itself). -#}
{% test accepted_range(
    model, column_name, min_value=none, max_value=none, inclusive=true, key_column=none
) %}
    {{ return(adapter.dispatch('test_accepted_range', 'ledgerflow')(
        model, column_name, min_value, max_value, inclusive, key_column
    )) }}
{% endtest %}
