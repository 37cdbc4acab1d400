{#- Fails on text that is empty or not cleaned the contract's way: Unicode whitespace
    trimmed at both ends and, with collapse_inner_whitespace, inner runs collapsed to one
    space. NULL is left to not_null. -#}
{% test is_trimmed_text(model, column_name, collapse_inner_whitespace=false, key_column=none) %}
    {{ return(adapter.dispatch('test_is_trimmed_text', 'ledgerflow')(
        model, column_name, collapse_inner_whitespace, key_column
    )) }}
{% endtest %}
