{#- expression_is_true asserts that `expression` (prefixed with column_name on a column
    test) holds on every row. A NULL result passes, as in dbt_utils: pair with not_null.
    Each failing row: the key column(s) (and the tested column), or the whole row. -#}
{% macro default__test_expression_is_true(model, expression, column_name, key_column) %}

{%- set condition = (column_name ~ " " ~ expression) if column_name is not none else expression -%}
{%- set columns = failing_row_columns(key_column, column_name) if key_column is not none else ["*"] %}

with

validation as (

    select * from {{ model }}

),

validation_errors as (

    select
        {{ columns | join(',\n        ') }}

    from validation
    where not ({{ condition }})

)

select * from validation_errors

{% endmacro %}
