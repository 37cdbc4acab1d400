{#- scd2_versions_do_not_overlap asserts, per unique_key (a column or a list), that every
    version has valid_from set and valid_from < valid_to when closed, and that each version
    ends no later than the next one starts. With versions sorted by valid_from that is
    exactly "no two half-open intervals overlap": an open (current) version followed by
    another, two versions starting together, or one ending after the next starts all fail.
    One window pass, no self-join. Each failing row: the key, the version's bounds, the
    next version's start and which rule it breaks. -#}
{% macro default__test_scd2_versions_do_not_overlap(
    model, unique_key, valid_from_column, valid_to_column
) %}

{%- set keys = failing_row_columns(unique_key) %}

with

versions as (

    select
        {{ keys | join(',\n        ') }},
        {{ valid_from_column }} as valid_from,
        {{ valid_to_column }} as valid_to,
        lead({{ valid_from_column }}) over (
            partition by {{ keys | join(', ') }}
            order by {{ valid_from_column }}, {{ valid_to_column }}
        ) as next_valid_from

    from {{ model }}

),

checked as (

    select
        *,
        case
            when valid_from is null then 'missing_valid_from'
            when valid_to is not null and valid_to <= valid_from then 'empty_or_inverted_interval'
            when next_valid_from is not null and valid_to is null then 'current_version_not_last'
            when next_valid_from is not null and valid_to > next_valid_from then 'overlaps_next_version'
        end as violation

    from versions

),

validation_errors as (

    select * from checked
    where violation is not null

)

select * from validation_errors

{% endmacro %}
