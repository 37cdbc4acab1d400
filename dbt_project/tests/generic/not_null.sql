{#- The project's not_null, overriding dbt's built-in one by name: same assertion, but the
    failing rows carry the record's key (key_column, else the whole row, whose first column
    is the model's key by the project's convention) where dbt's return only the NULLs,
    which cannot name an offending record. -#}
{% test not_null(model, column_name, key_column=none) %}
    {{ return(adapter.dispatch('test_not_null', 'ledgerflow')(model, column_name, key_column)) }}
{% endtest %}
