{#- non_negative asserts column_name >= 0 on every row; NULL passes (not_null's job).
    Each failing row: the key column(s), then the negative value. -#}
{% macro default__test_non_negative(model, column_name, key_column) %}

with

validation as (

    select
        {{ failing_row_columns(key_column, column_name) | join(',\n        ') }}

    from {{ model }}

),

validation_errors as (

    select * from validation
    where {{ column_name }} < 0

)

select * from validation_errors

{% endmacro %}
