{#- The project's relationships, overriding dbt's built-in one by name: same assertion,
    but checked from the child's side, so that on tonight's change set it costs what
    changed (macros/tests/relationships.sql). -#}
{% test relationships(model, column_name, to, field) %}
    {{ return(adapter.dispatch('test_relationships', 'ledgerflow')(model, column_name, to, field)) }}
{% endtest %}
