{#- relationships_where asserts that every non-NULL column_name of the rows of `model`
    meeting from_condition exists as `field` in the rows of `to` meeting to_condition.
    Each failing row: the key column(s), then the dangling value. -#}
{% macro default__test_relationships_where(
    model, column_name, to, field, from_condition, to_condition, key_column
) %}

with

child_rows as (

    select
        {{ failing_row_columns(key_column, column_name) | join(',\n        ') }}

    from {{ model }}
    where {{ column_name }} is not null
        and ({{ from_condition }})

),

parent_keys as (

    select distinct {{ field }} as parent_key

    from {{ to }}
    where {{ field }} is not null
        and ({{ to_condition }})

),

validation_errors as (

    select child_rows.*

    from child_rows
    left join parent_keys
        on child_rows.{{ column_name }} = parent_keys.parent_key
    where parent_keys.parent_key is null

)

select * from validation_errors

{% endmacro %}
