{#- Fails when the relation has no rows. A header-only delivery is valid input, but
    publishing an empty summary over yesterday's would be a quiet failure. -#}
{% test not_empty(model) %}
    {{ return(adapter.dispatch('test_not_empty', 'ledgerflow')(model)) }}
{% endtest %}
