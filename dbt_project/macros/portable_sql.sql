{#- Whole-string regex match. RE2 (DuckDB) and Java (Spark) differ in how "$" treats a
    trailing newline, so each dialect gets its own explicit full-match form. -#}
{% macro regex_full_match(expression, pattern) -%}
    {{ return(adapter.dispatch('regex_full_match', 'ledgerflow')(expression, pattern)) }}
{%- endmacro %}

{% macro default__regex_full_match(expression, pattern) -%}
    regexp_full_match({{ expression }}, '{{ pattern }}')
{%- endmacro %}

{% macro databricks__regex_full_match(expression, pattern) -%}
    regexp_like({{ expression }}, '^(?:{{ pattern }})\\z')
{%- endmacro %}

{#- Whether the regex matches anywhere in the text (not necessarily the whole of it). -#}
{% macro regex_contains(expression, pattern) -%}
    {{ return(adapter.dispatch('regex_contains', 'ledgerflow')(expression, pattern)) }}
{%- endmacro %}

{% macro default__regex_contains(expression, pattern) -%}
    regexp_matches({{ expression }}, '{{ pattern }}')
{%- endmacro %}

{% macro databricks__regex_contains(expression, pattern) -%}
    regexp_like({{ expression }}, '{{ pattern }}')
{%- endmacro %}

{#- A cast that yields NULL instead of failing. dbt's own safe_cast is a plain cast on
    dbt-duckdb; both DuckDB and Databricks SQL have try_cast. Callers validate the text
    first: try_cast alone accepts '+42', '1e3' and '.5'. -#}
{% macro safe_cast(expression, data_type) -%}
    {{ return(adapter.dispatch('safe_cast', 'ledgerflow')(expression, data_type)) }}
{%- endmacro %}

{% macro default__safe_cast(expression, data_type) -%}
    try_cast({{ expression }} as {{ data_type }})
{%- endmacro %}

{#- The run's timestamp (UTC), one per run: every version a run opens or closes, in every
    versioned model, carries it (it is how flows/runtime/wap.py undoes a run that did not
    publish).

    A literal where the flow runs dbt: filters on it (`valid_from = <run>`) then prune by
    the tables' zone maps, which a scalar subquery does not. The flow sets it in the
    environment (LEDGERFLOW_RUN_AT) and read only under `execute`, so nothing a run
    changes reaches what dbt renders when it parses, and partial parsing holds from one run
    to the next (a --vars value would re-parse everything). dbt run by hand, without the
    variable, reads the table the flow also writes (ledgerflow.run_context). -#}
{% macro run_timestamp() -%}
    {{ return(adapter.dispatch('run_timestamp', 'ledgerflow')()) }}
{%- endmacro %}

{% macro default__run_timestamp() -%}
    {%- set literal = env_var('LEDGERFLOW_RUN_AT', '') if execute else '' -%}
    {%- if literal -%}
        cast('{{ literal }}' as timestamp)
    {%- else -%}
        (select max(run_at) from ledgerflow.run_context)
    {%- endif -%}
{%- endmacro %}

{#- No flow writes a run-context table on Databricks: whoever runs dbt there passes the
    run's instant as --vars '{run_at: "2026-01-31 02:30:00"}' (UTC). Without it, each
    statement's own current_timestamp(), which is one instant per model, not per run. -#}
{% macro databricks__run_timestamp() -%}
    {%- if var('run_at', none) is not none -%}
        cast('{{ var("run_at") }}' as timestamp)
    {%- else -%}
        current_timestamp()
    {%- endif -%}
{%- endmacro %}

{#- The run's scope where it is known when a model compiles: 'full' when this run
    recomputes every key (`ledgerflow run --full-refresh`), 'changes' when only the keys
    whose inputs changed; '' when unknown (dbt run by hand, no LEDGERFLOW_RUN_SCOPE), read
    only at execution so that partial parsing holds. Databricks recomputes everything
    unless told otherwise. -#}
{% macro known_run_scope() -%}
    {{ return(adapter.dispatch('known_run_scope', 'ledgerflow')()) }}
{%- endmacro %}

{% macro default__known_run_scope() -%}
    {{ return(env_var('LEDGERFLOW_RUN_SCOPE', '') if execute else '') }}
{%- endmacro %}

{% macro databricks__known_run_scope() -%}
    {{ return('full' if var('full_scope', true) else 'changes') }}
{%- endmacro %}

{#- Whether this run recomputes every key, as a SQL condition: a literal where the scope
    is known, else read at run time from the run context. -#}
{% macro full_scope() -%}
    {%- set scope = known_run_scope() -%}
    {%- if scope -%}
        {{ 'true' if scope == 'full' else 'false' }}
    {%- else -%}
        ((select max(scope) from ledgerflow.run_context) = 'full')
    {%- endif -%}
{%- endmacro %}

{#- The same for the compiler: true only when this run is known to recompute every key.
    Such a run compares every key outright instead of building a list of all of them and
    filtering by it (at 10M accounts that list and its semi joins ran a full refresh out
    of memory). Unknown is false: full_scope() then still widens the lists to every key. -#}
{% macro scope_is_full() -%}
    {{ return(known_run_scope() == 'full') }}
{%- endmacro %}

{#- A whole-number type wide enough for 10^17 cents x 250 rate units (2.5 x 10^19, past
    BIGINT), with exact multiplication. -#}
{% macro exact_integer_type() -%}
    {{ return(adapter.dispatch('exact_integer_type', 'ledgerflow')()) }}
{%- endmacro %}

{% macro default__exact_integer_type() -%}
    decimal(38, 0)
{%- endmacro %}

{% macro duckdb__exact_integer_type() -%}
    hugeint
{%- endmacro %}
