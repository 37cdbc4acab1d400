{#- not_null asserts that column_name is never NULL. Each failing row: the key column(s)
    and the column when key_column is given, else the whole row. (Named after dbt's own
    implementation, which this one shadows within the project.) -#}
{% macro default__test_not_null(model, column_name, key_column=none) %}

{%- set columns = failing_row_columns(key_column, column_name) if key_column is not none else ["*"] %}

with

validation_errors as (

    select
        {{ columns | join(',\n        ') }}

    from {{ model }}
    where {{ column_name }} is null

)

select * from validation_errors

{% endmacro %}
