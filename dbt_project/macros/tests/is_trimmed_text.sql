{#- is_trimmed_text asserts that column_name is non-empty and equal to its cleaned form:
    clean_text (Python str.strip() whitespace, not SQL trim's spaces only) and, when
    collapse_inner_whitespace, collapse_whitespace too. Each failing row: the key
    column(s), then the uncleaned text. -#}
{% macro default__test_is_trimmed_text(model, column_name, collapse_inner_whitespace, key_column) %}

{%- set cleaned = clean_text(column_name) -%}
{%- if collapse_inner_whitespace -%}
    {%- set cleaned = collapse_whitespace(cleaned) -%}
{%- endif %}

with

validation as (

    select
        {{ failing_row_columns(key_column, column_name) | join(',\n        ') }}

    from {{ model }}
    where {{ column_name }} is not null

),

validation_errors as (

    select * from validation
    where {{ column_name }} = ''
        or {{ column_name }} <> {{ cleaned }}

)

select * from validation_errors

{% endmacro %}
