{#- Use the folder's schema name as is (staging, marts, ...) rather than dbt's
    default "<target schema>_<custom schema>": the warehouse is single-tenant. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
