{#- Fails on SCD2 versions that overlap another version of the same key, or whose interval
    is empty or inverted. Versions are half-open [valid_from, valid_to), valid_to NULL for
    the current one. -#}
{% test scd2_versions_do_not_overlap(
    model, unique_key, valid_from_column='valid_from', valid_to_column='valid_to'
) %}
    {{ return(adapter.dispatch('test_scd2_versions_do_not_overlap', 'ledgerflow')(
        model, unique_key, valid_from_column, valid_to_column
    )) }}
{% endtest %}
