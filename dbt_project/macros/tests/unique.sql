{#- unique asserts that no non-NULL value of column_name appears on more than one row.
    Each failing row is one of the rows sharing a value: the value, under the column's
    name, and how many rows share it, so the failure count is the number of rows with a
    duplicated key (the quality report's `duplicates`). (Named after dbt's own
    implementation, which this one shadows within the project.) -#}
{% macro default__test_unique(model, column_name) %}

with

keyed_rows as (

    select
        {{ column_name }},
        count(*) over (partition by {{ column_name }}) as n_records

    from {{ model }}
    where {{ column_name }} is not null

),

validation_errors as (

    select * from keyed_rows
    where n_records > 1

)

select * from validation_errors

{% endmacro %}
