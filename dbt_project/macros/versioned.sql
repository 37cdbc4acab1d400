{#- Versioned models: every table a later run builds on keeps its history as versions,
    half-open [valid_from, valid_to), valid_to NULL for the open one. A run never updates a
    version: it opens versions (valid_from = the run's timestamp) and closes open ones
    (valid_to = the run's timestamp), so a run's changes are exactly the rows carrying its
    timestamp and flows/runtime/wap.py can undo a run that did not publish. They are stored
    as a current table (one row per key) beside an append-only history, behind a view of
    both (macros/materializations/versioned.sql).

    versioned_config(key) is the config every versioned model uses: the model's output is
    the versions to write; full_refresh=false, since a rebuild would erase history. The
    SCD2 tests (versions never overlap, one open version per key) keep (key, valid_from)
    unique. -#}
{% macro versioned_config(key) -%}
    {{ config(
        materialized='versioned',
        unique_key=key,
        full_refresh=false,
    ) }}
{%- endmacro %}

{#- versioned_changes(): the rows to write to a versioned model so that, for every key in
    `affected` (a CTE with the key column; none: every key), the model's open versions
    become the rows of `proposed` (key + value columns: the truth for those keys now).
    A key whose open version differs from its proposal (NULL-safe), or that is on one side
    only, gets its open version closed and, if proposed, a new version opened. Keys not in
    `affected` are left alone: the caller shows they cannot have changed. A run that
    recomputes every key (scope_is_full()) compares every key. -#}
{% macro versioned_changes(proposed, key, value_columns, affected=none) -%}

{%- set columns = [key] + (value_columns | list) %}
{%- set affected = none if scope_is_full() else affected %}

{% if is_incremental() %}

open_versions as (

    select * from {{ current_versions(this) }}
    {%- if affected is not none %}
    where {{ key }} in (select {{ key }} from {{ affected }})
    {%- endif %}

),

proposed_versions as (

    select * from {{ proposed }}
    {%- if affected is not none %}
    where {{ key }} in (select {{ key }} from {{ affected }})
    {%- endif %}

),

changed_keys as (

    select coalesce(open_versions.{{ key }}, proposed_versions.{{ key }}) as {{ key }}

    from open_versions
    full outer join proposed_versions
        on open_versions.{{ key }} = proposed_versions.{{ key }}
    where
        open_versions.{{ key }} is null
        or proposed_versions.{{ key }} is null
        {%- for column in value_columns %}
        or open_versions.{{ column }} is distinct from proposed_versions.{{ column }}
        {%- endfor %}

),

closed_versions as (

    select
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        valid_from,
        {{ run_timestamp() }} as valid_to

    from open_versions
    where {{ key }} in (select {{ key }} from changed_keys)

),

opened_versions as (

    select
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        {{ run_timestamp() }} as valid_from,
        cast(null as timestamp) as valid_to

    from proposed_versions
    where {{ key }} in (select {{ key }} from changed_keys)

),

versions_to_write as (

    select * from closed_versions
    union all
    select * from opened_versions

)

{% else %}

versions_to_write as (

    select
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        {{ run_timestamp() }} as valid_from,
        cast(null as timestamp) as valid_to

    from {{ proposed }}

)

{% endif %}

{%- endmacro %}
