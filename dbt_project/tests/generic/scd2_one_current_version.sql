{#- Fails on keys of an SCD2 history with more than one current version (valid_to NULL). -#}
{% test scd2_one_current_version(model, unique_key, valid_to_column='valid_to') %}
    {{ return(adapter.dispatch('test_scd2_one_current_version', 'ledgerflow')(
        model, unique_key, valid_to_column
    )) }}
{% endtest %}
