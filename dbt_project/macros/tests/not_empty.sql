{#- Implementation of the not_empty generic test (tests/generic/not_empty.sql). -#}
{% macro default__test_not_empty(model) %}

with

row_count as (

    select count(*) as row_count from {{ model }}

),

validation_errors as (

    select * from row_count where row_count = 0

)

select * from validation_errors

{% endmacro %}
