{#- non_negative asserts column_name >= 0 on every row; NULL passes (not_null's job).
    It is accepted_range with a lower bound of zero. -#}
{% macro default__test_non_negative(model, column_name, key_column) %}
    {{ default__test_accepted_range(model, column_name, 0, none, true, key_column) }}
{% endmacro %}
