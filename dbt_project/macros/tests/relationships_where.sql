{#- relationships_where asserts that every non-NULL column_name of the rows of `model`
    meeting from_condition exists as `field` in the rows of `to` meeting to_condition.
    Each failing row: the key column(s), then the dangling value.

    As relationships (macros/tests/relationships.sql), both directions on tonight's change
    set, the parents reached through the children only. -#}
{% macro default__test_relationships_where(
    model, column_name, to, field, from_condition, to_condition, key_column
) %}

{%- set columns = failing_row_columns(key_column, column_name) %}

with

child_rows as (

    select
        {{ columns | join(',\n        ') }}

    from {{ model }}
    where {{ column_name }} is not null
        and ({{ from_condition }})
    {{ children_of_changed_parents(columns, column_name, to, field, from_condition) }}

),

parent_keys as (

    select {{ field }} as parent_key

    from {{ to }}
    where {{ field }} in (select child_rows.{{ column_name }} from child_rows)
        and ({{ to_condition }})

),

validation_errors as (

    select distinct child_rows.*

    from child_rows
    where not exists (
        select 1 from parent_keys
        where parent_keys.parent_key = child_rows.{{ column_name }}
    )

)

select * from validation_errors

{% endmacro %}
