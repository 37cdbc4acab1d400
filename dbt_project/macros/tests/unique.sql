{#- unique asserts that no non-NULL value of column_name appears on more than one row.
    Each failing row: the repeated value, under the column's name, and how often it
    appears. (Named after dbt's own implementation, which this one shadows within the
    project.) -#}
{% macro default__test_unique(model, column_name) %}

with

value_counts as (

    select
        {{ column_name }},
        count(*) as n_records

    from {{ model }}
    where {{ column_name }} is not null
    group by {{ column_name }}

),

validation_errors as (

    select * from value_counts
    where n_records > 1

)

select * from validation_errors

{% endmacro %}
