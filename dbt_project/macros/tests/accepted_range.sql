{#- accepted_range asserts min_value <= column_name <= max_value (strict when inclusive is
    false) on every row; NULL passes (not_null's job). At least one bound is required.
    Each failing row: the key column(s), then the out-of-range value. -#}
{% macro default__test_accepted_range(
    model, column_name, min_value, max_value, inclusive, key_column
) %}

{%- if min_value is none and max_value is none -%}
    {{ exceptions.raise_compiler_error(
        "accepted_range on " ~ column_name ~ ": set min_value, max_value or both"
    ) }}
{%- endif -%}
{%- set comparison = ">=" if inclusive else ">" %}

with

validation as (

    select
        {{ failing_row_columns(key_column, column_name) | join(',\n        ') }}

    from {{ model }}

),

validation_errors as (

    select * from validation
    where 1 = 2
    {%- if min_value is not none %}
        or not {{ column_name }} {{ comparison }} {{ min_value }}
    {%- endif %}
    {%- if max_value is not none %}
        or not {{ max_value }} {{ comparison }} {{ column_name }}
    {%- endif %}

)

select * from validation_errors

{% endmacro %}
