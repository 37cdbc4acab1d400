{#- Unicode whitespace exactly as Python's str.strip() and str.split() see it (the
    whitespace_code_points var). SQL trim() removes only spaces, which would let tabs, CR
    and no-break spaces through. -#}
{% macro unicode_whitespace_code_points() -%}
    {{ return(var('whitespace_code_points')) }}
{%- endmacro %}

{#- A regex character class of that whitespace, less the code points in `except`. -#}
{% macro unicode_whitespace_regex_class(except=[]) -%}
    {%- set parts = [] -%}
    {%- for cp in unicode_whitespace_code_points() if cp not in except -%}
        {%- do parts.append(regex_backslash() ~ 'x{' ~ '%04x' % cp ~ '}') -%}
    {%- endfor -%}
    [{{ parts | join('') }}]
{%- endmacro %}

{#- A regex escape's backslash as written inside a SQL string literal. DuckDB keeps
    backslashes in literals; Databricks unescapes them ('\x' would reach the regex as 'x'),
    so there it is doubled. -#}
{% macro regex_backslash() -%}
    {{ return(adapter.dispatch('regex_backslash', 'ledgerflow')()) }}
{%- endmacro %}

{% macro default__regex_backslash() -%}
    {{ return('\\') }}
{%- endmacro %}

{% macro databricks__regex_backslash() -%}
    {{ return('\\\\') }}
{%- endmacro %}

{#- Trimmed text, with NULL turned into '' so "missing" is one comparison. -#}
{% macro clean_text(column) -%}
    {{ return(adapter.dispatch('clean_text', 'ledgerflow')(column)) }}
{%- endmacro %}

{% macro default__clean_text(column) -%}
    {%- set ws = unicode_whitespace_regex_class() -%}
    coalesce(regexp_replace({{ column }}, '^{{ ws }}+|{{ ws }}+$', ''), '')
{%- endmacro %}

{% macro duckdb__clean_text(column) -%}
    {#- trim(text, characters) is a plain scan, several times faster than a regex on large
        deliveries, but with 29 characters it still costs ~1.7 s per column per million rows.
        Most values start and end with a visible ASCII character and need no trimming at
        all, which two code-point checks tell (~0.4 s). -#}
    {%- set chars = [] -%}
    {%- for cp in unicode_whitespace_code_points() -%}{%- do chars.append('chr(' ~ cp ~ ')') -%}{%- endfor -%}
    coalesce(
        case
            when ascii({{ column }}) between 33 and 126
                and ascii(right({{ column }}, 1)) between 33 and 126
                then {{ column }}
            else trim({{ column }}, {{ chars | join(' || ') }})
        end,
        ''
    )
{%- endmacro %}

{#- Inner runs of Unicode whitespace become one space; the caller has trimmed the ends.
    DuckDB replaces only the first match unless told 'g'; Spark's regexp_replace always
    replaces every match, and its fourth argument is a position, not options. -#}
{% macro collapse_whitespace(column) -%}
    {{ return(adapter.dispatch('collapse_whitespace', 'ledgerflow')(column)) }}
{%- endmacro %}

{% macro default__collapse_whitespace(column) -%}
    regexp_replace({{ column }}, '{{ unicode_whitespace_regex_class() }}+', ' ', 'g')
{%- endmacro %}

{% macro databricks__collapse_whitespace(column) -%}
    regexp_replace({{ column }}, '{{ unicode_whitespace_regex_class() }}+', ' ')
{%- endmacro %}

{% macro databricks__clean_text(column) -%}
    {%- set ws = unicode_whitespace_regex_class() -%}
    coalesce(regexp_replace({{ column }}, '^{{ ws }}+|{{ ws }}+$', ''), '')
{%- endmacro %}
