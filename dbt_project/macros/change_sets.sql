{#- Checks on the change set.

    dbt runs every generic data test on `get_where_subquery(<model>)`. Here, on a nightly
    run, that is the model's rows whose key changed tonight: rows written never change
    afterwards, so checking tonight's keys each night covers the table by induction, at
    the cost of what changed instead of the table's size.

    A model's keys changed tonight are those of the versioned models it is made from
    (macros/materializations/versioned.sql): the keys of the versions a run opened
    (`valid_from` = the run, in `<model>__current`) or closed (`valid_to` = the run, in
    `<model>__history`), two scans both tables' zone maps prune (they are appended to in
    run order, and the run's timestamp is a literal). A versioned model is made from itself;
    any other model says in its YAML, as `meta: change_set`, which of its columns is its
    key and which versioned models it is made from:

        change_set:
          key: account_id
          from:
            - {model: accounts_snapshot, column: account_id}
            - {model: customers_snapshot, column: customer_id, via: customer_id}

    `column` is the versioned model's, `via` this model's column that holds it (default:
    the key). A key rule (unique, one open version, no overlap) so checks tonight's keys
    against every row of those keys, and a row rule tonight's rows.

    The whole table is checked instead when the run checks everything (LEDGERFLOW_CHECK_SCOPE
    is not "change set": `ledgerflow run --full-check`, `--full-refresh`, and any run whose
    code changed since the last publish, flows/pipeline.py), when dbt runs without the flow
    (the variable unset), and for a model with no change set. The variable is read only at
    execution, so partial parsing holds.

    A check scoped to the change set carries a comment in its compiled SQL, which the flow
    reads (flows/steps/dbt_layers.py), so the quality report names each check's scope. -#}

{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- set changed = changed_keys_condition(model.get('attached_node')) if execute else none -%}
    {%- set conditions = ([where] if where else []) + ([changed] if changed else []) -%}
    {%- if not conditions -%}
        {%- do return(relation) -%}
    {%- endif -%}
    {%- set scoped -%}
        (select * from {{ relation }} where {{ conditions | join(' and ') }}
            {%- if changed %} /* {{ change_set_marker() }} */{% endif %}) dbt_subquery
    {%- endset -%}
    {%- do return(scoped) -%}
{%- endmacro %}

{% macro change_set_marker() -%}
    ledgerflow scope: change set
{%- endmacro %}

{#- `<key> in (<tonight's keys>)` for the model `unique_id`, or none where the whole
    table is checked. -#}
{% macro changed_keys_condition(unique_id) -%}
    {%- set changed = changed_keys(unique_id) -%}
    {%- if changed is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(changed['key'] ~ ' in (' ~ changed['sql'] ~ ')') }}
{%- endmacro %}

{#- The model `unique_id`'s keys changed tonight: {'key': its key column, 'sql': a select
    of them}, or none where the whole table is checked. -#}
{% macro changed_keys(unique_id) -%}
    {%- set scope = env_var('LEDGERFLOW_CHECK_SCOPE', '') -%}
    {%- if scope != 'change set' or not unique_id or unique_id not in graph.nodes -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set node = graph.nodes[unique_id] -%}
    {%- set spec = change_set_of(node) -%}
    {%- if spec is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set this_relation = relation_of(node) -%}
    {%- set selects = [] -%}
    {%- for part in spec['from'] -%}
        {%- set via = part.get('via', spec['key']) -%}
        {%- set changes = changed_values(part['model'], part['column']) -%}
        {%- if via == spec['key'] -%}
            {%- do selects.append(changes) -%}
        {%- else -%}
            {%- do selects.append(
                'select ' ~ spec['key'] ~ ' from ' ~ this_relation
                ~ ' where ' ~ via ~ ' in (' ~ changes ~ ')'
            ) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return({'key': spec['key'], 'sql': selects | join(' union all ')}) }}
{%- endmacro %}

{#- A select of `column` of the versioned model `model_name`'s versions opened or closed
    tonight. -#}
{% macro changed_values(model_name, column) -%}
    {{ changed_rows(relation_of(model_named(model_name)), column) }}
{%- endmacro %}

{#- The same for a versioned model's relation (a model passes `ref(...)`, which keeps
    the dependency): each table filtered on the run's stamp alone, so that both scans
    prune by zone map, where the view's `valid_from = run or valid_to = run` prunes
    neither. -#}
{% macro changed_rows(relation, column) -%}
    select {{ column }} from {{ current_versions(relation) }}
    where valid_from = {{ run_timestamp() }}
    union all
    select {{ column }} from {{ versioned_relations(relation)['history'] }}
    where valid_to = {{ run_timestamp() }}
{%- endmacro %}

{#- For a check of children against parents (relationships, a rate against its customer's
    flag): `union all <children of the parents changed tonight>`, when the check runs on
    tonight's change set and the parent's key is `parent_field`; else nothing. A parent
    that changed or left leaves its unchanged children to check too. -#}
{% macro children_of_changed_parents(columns, column_name, parent, parent_field, condition='1 = 1') -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set parents_changed = changed_keys(model_unique_id_of(parent)) -%}
    {%- set attached = model.get('attached_node') -%}
    {%- if parents_changed is none or not attached or parents_changed['key'] != parent_field -%}
        {{ return('') }}
    {%- endif -%}
    union all
    select {{ columns | join(', ') }}
    from {{ relation_of(graph.nodes[attached]) }}
    where {{ column_name }} in ({{ parents_changed['sql'] }})
        and ({{ condition }})
{%- endmacro %}

{#- What a model's change set is made from: its own versions for a versioned model, else
    its `meta: change_set`, else none. -#}
{% macro change_set_of(node) -%}
    {%- if node.config.materialized == 'versioned' -%}
        {%- set key = node.config.unique_key -%}
        {{ return({'key': key, 'from': [{'model': node.name, 'column': key}]}) }}
    {%- endif -%}
    {{ return(node.config.meta.get('change_set')) }}
{%- endmacro %}

{% macro model_named(name) -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.name == name -%}
            {{ return(node) }}
        {%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("change_set names no model called " ~ name) }}
{%- endmacro %}

{% macro relation_of(node) -%}
    {{ return(api.Relation.create(
        database=node.database, schema=node.schema, identifier=node.alias
    )) }}
{%- endmacro %}

{#- The unique id of the model a relation is, or none. -#}
{% macro model_unique_id_of(relation) -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.alias == relation.identifier
                and node.schema == relation.schema -%}
            {{ return(node.unique_id) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}
