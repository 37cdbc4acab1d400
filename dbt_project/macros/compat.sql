{#- Every override of one of dbt's own macros, each for the dbt versions it was written for
    (var compat_dbt_versions). An override replaces something dbt may change in any release,
    so each one first calls assert_supported_dbt_version, which stops the run with a clear
    error on any other dbt: re-check the override, then widen the var. -#}

{% macro assert_supported_dbt_version(override) -%}
    {%- set supported = var('compat_dbt_versions') -%}
    {%- set ns = namespace(supported=false) -%}
    {%- for prefix in supported -%}
        {%- if dbt_version.startswith(prefix) -%}{%- set ns.supported = true -%}{%- endif -%}
    {%- endfor -%}
    {%- if not ns.supported -%}
        {{ exceptions.raise_compiler_error(
            "macros/compat.sql overrides dbt's " ~ override ~ " and was written for dbt "
            ~ (supported | join(' or ')) ~ "x; this is dbt " ~ dbt_version
            ~ ": re-check the override, then widen var compat_dbt_versions"
        ) }}
    {%- endif -%}
{%- endmacro %}

{#- dbt's is_incremental() asks the warehouse whether the model's table exists, for the
    `incremental` materialization only. A `versioned` model (macros/materializations/
    versioned.sql) is incremental once its current table exists. With
    var('offline_compile') (`dbt compile --target databricks --no-populate-cache --vars
    '{offline_compile: true}'`, where no warehouse can be reached) the answer is taken as
    yes for every such model that would not be fully refreshed: the nightly case, so the
    branches that read {{ this }} are compiled and checked too. Otherwise dbt's own
    answer, unchanged. -#}
{% macro is_incremental() -%}
    {%- do assert_supported_dbt_version('is_incremental()') -%}
    {%- set materialized = model.config.materialized -%}
    {%- if var('offline_compile', false) -%}
        {{ return(materialized in ('incremental', 'versioned') and not should_full_refresh()) }}
    {%- endif -%}
    {%- if materialized == 'versioned' and execute -%}
        {%- set current = current_versions(this) -%}
        {%- set found = adapter.get_relation(current.database, current.schema, current.identifier) -%}
        {{ return(found is not none and found.type == 'table' and not should_full_refresh()) }}
    {%- endif -%}
    {{ return(dbt.is_incremental()) }}
{%- endmacro %}

{#- Snapshots stamp versions with the run's timestamp rather than each statement's clock,
    so a version's valid_from is the run that saw it and both snapshots agree. dbt has no
    setting for this: snapshot_get_time is the adapter macro its snapshot strategies call. -#}
{% macro duckdb__snapshot_get_time() -%}
    {%- do assert_supported_dbt_version('snapshot_get_time()') -%}
    {{ run_timestamp() }}
{%- endmacro %}

{% macro databricks__snapshot_get_time() -%}
    {%- do assert_supported_dbt_version('snapshot_get_time()') -%}
    {{ run_timestamp() }}
{%- endmacro %}
