{#- dbt's is_incremental() asks the warehouse whether the model's table exists. With
    var('offline_compile') (`dbt compile --target databricks --no-populate-cache --vars
    '{offline_compile: true}'`, where no warehouse can be reached) the answer is taken as
    yes for every incremental model that would not be fully refreshed: the nightly case,
    so the branches that read {{ this }} are compiled and checked too. Otherwise dbt's own
    answer, unchanged. -#}
{% macro is_incremental() -%}
    {%- if var('offline_compile', false) -%}
        {{ return(model.config.materialized == 'incremental' and not should_full_refresh()) }}
    {%- endif -%}
    {{ return(dbt.is_incremental()) }}
{%- endmacro %}
