{#- relationships asserts that every non-NULL column_name of `model` exists as `field` in
    `to`. Each failing row: a dangling value, once, as from_field.

    Both directions on tonight's change set (macros/change_sets.sql): the children changed
    tonight (`model` is scoped to them) must find a parent, and so must the children of
    every parent changed tonight, closed ones included. The parents are reached through
    the children (a semi join whose build side is the few children), never read whole. -#}
{% macro default__test_relationships(model, column_name, to, field) %}

with

child as (

    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
    {{ children_of_changed_parents([column_name ~ ' as from_field'], column_name, to, field) }}

),

parent as (

    select {{ field }} as to_field
    from {{ to }}
    where {{ field }} in (select child.from_field from child)

),

validation_errors as (

    select distinct child.from_field
    from child
    where not exists (
        select 1 from parent
        where parent.to_field = child.from_field
    )

)

select * from validation_errors

{% endmacro %}
