{#- The columns a generic test's failing rows start with: the key column(s) first, so the
    quality report (which reads the first column of the failing rows) can name the offending
    records, then the tested column when it is not itself the key. key_column is a column
    name or a list of them; without one, the tested column is the key. -#}
{% macro failing_row_columns(key_column=none, column_name=none) %}
    {%- if key_column is none -%}
        {%- set columns = [] -%}
    {%- elif key_column is string -%}
        {%- set columns = [key_column] -%}
    {%- else -%}
        {%- set columns = key_column | list -%}
    {%- endif -%}
    {%- if column_name is not none and column_name not in columns -%}
        {%- do columns.append(column_name) -%}
    {%- endif -%}
    {{ return(columns) }}
{% endmacro %}
