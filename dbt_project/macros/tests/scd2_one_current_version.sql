{#- scd2_one_current_version asserts that per unique_key (a column or a list) at most one
    version is open (valid_to NULL): the intermediate layer reads "the current version"
    and would fan out otherwise. Each failing row: the key and its count of open versions. -#}
{% macro default__test_scd2_one_current_version(model, unique_key, valid_to_column) %}

{%- set keys = failing_row_columns(unique_key) %}

with

current_versions as (

    select
        {{ keys | join(',\n        ') }},
        count(*) as current_version_count

    from {{ model }}
    where {{ valid_to_column }} is null
    group by {{ keys | join(', ') }}

),

validation_errors as (

    select * from current_versions
    where current_version_count > 1

)

select * from validation_errors

{% endmacro %}
