{#- The `versioned` materialization (macros/versioned.sql says what a versioned model is).

    A versioned model named M is three relations:

    - M__current: its open versions, one row per key, with valid_from;
    - M__history: its closed versions, with valid_from and valid_to, only ever appended to;
    - M: a view of both, valid_to NULL for the open versions: the SCD2 interface readers
      and tests use.

    The model's SQL returns the versions to write (versioned_changes()): closed ones carry
    the run's valid_to, opened ones none. A run appends the closed ones to history, deletes
    them from current by (key, valid_from), and inserts the opened ones into current, in one
    transaction (on DuckDB; Databricks has none). Current is reached through the run's own
    rows, never scanned for `valid_to is null` (rows updated in place all over a file
    defeat every zone map), and history only grows. flows/runtime/wap.py undoes a run that
    did not publish: it deletes what the run opened from current and moves what it closed
    from history back.

    Plain SQL with explicit column lists, so the one implementation serves DuckDB and
    Databricks alike. -#}

{% macro versioned_relations(relation) -%}
    {{ return({
        'current': relation.incorporate(
            path={'identifier': relation.identifier ~ '__current'}, type='table'),
        'history': relation.incorporate(
            path={'identifier': relation.identifier ~ '__history'}, type='table'),
        'written': relation.incorporate(
            path={'identifier': relation.identifier ~ '__written'}, type='table'),
        'view': relation.incorporate(type='view'),
    }) }}
{%- endmacro %}

{#- The open versions of a versioned model, for a model that reads only those: `ref('m')`
    keeps the dependency, and the relation read is the current table. In a unit test the
    ref is the test's fixture, which stands for the open versions. -#}
{% macro current_versions(relation) -%}
    {%- if relation.identifier.startswith('__dbt__cte__') -%}
        {{ return(relation) }}
    {%- endif -%}
    {{ return(versioned_relations(relation)['current']) }}
{%- endmacro %}

{% materialization versioned, default %}
    {%- set key = config.require('unique_key') -%}
    {%- set relations = versioned_relations(this) -%}
    {%- set current = relations['current'] -%}
    {%- set history = relations['history'] -%}
    {%- set written = relations['written'] -%}
    {%- set existing = load_cached_relation(current) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {#- Left by a run killed before it dropped it. -#}
    {% do adapter.drop_relation(written) %}
    {% call statement('written') -%}
        create table {{ written }} as {{ compiled_code }}
    {%- endcall %}
    {%- set columns = adapter.get_columns_in_relation(written) | map(attribute='name') | list -%}
    {%- set open_columns = columns | reject('equalto', 'valid_to') | list -%}

    {% if existing is none %}
        {% call statement('main') -%}
            create table {{ current }} as
            select {{ open_columns | join(', ') }} from {{ written }}
            where valid_to is null;
            create table {{ history }} as
            select {{ columns | join(', ') }} from {{ written }}
            where 1 = 0
        {%- endcall %}
    {% else %}
        {% call statement('main') -%}
            insert into {{ history }} ({{ columns | join(', ') }})
            select {{ columns | join(', ') }} from {{ written }}
            where valid_to is not null;
            delete from {{ current }}
            where exists (
                select 1 from {{ written }}
                where
                    {{ written }}.{{ key }} = {{ current }}.{{ key }}
                    and {{ written }}.valid_from = {{ current }}.valid_from
                    and {{ written }}.valid_to is not null
            );
            insert into {{ current }} ({{ open_columns | join(', ') }})
            select {{ open_columns | join(', ') }} from {{ written }}
            where valid_to is null
        {%- endcall %}
    {% endif %}

    {% call statement('view') -%}
        create or replace view {{ this }} as
        select {{ open_columns | join(', ') }}, cast(null as timestamp) as valid_to
        from {{ current }}
        union all
        select {{ columns | join(', ') }} from {{ history }}
    {%- endcall %}
    {% do adapter.drop_relation(written) %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [relations['view'], current, history]}) }}
{% endmaterialization %}
