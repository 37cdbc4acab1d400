{#- is_trimmed_text asserts that column_name is non-empty and neither starts nor ends with
    Unicode whitespace (Python str.strip()'s, not SQL trim's spaces only) and, with
    collapse_inner_whitespace, holds no run of whitespace and none but plain spaces inside.
    Restated with patterns rather than the cleaning macros, so a cleaning rule coded wrong
    fails here. Each failing row: the key column(s), then the text. -#}
{% macro default__test_is_trimmed_text(model, column_name, collapse_inner_whitespace, key_column) %}

{%- set whitespace = unicode_whitespace_regex_class() -%}
{%- set not_a_space = unicode_whitespace_regex_class(except=[32]) %}

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
        or {{ regex_contains(column_name, '^' ~ whitespace ~ '|' ~ whitespace ~ '$') }}
    {%- if collapse_inner_whitespace %}
        or {{ regex_contains(column_name, whitespace ~ '{2}|' ~ not_a_space) }}
    {%- endif %}

)

select * from validation_errors

{% endmacro %}
