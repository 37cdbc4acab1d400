{#- The project's unique, overriding dbt's built-in one by name: same assertion, but the
    failing rows keep the column's own name (dbt's call it unique_field), so a report can
    say which key repeats. -#}
{% test unique(model, column_name) %}
    {{ return(adapter.dispatch('test_unique', 'ledgerflow')(model, column_name)) }}
{% endtest %}
