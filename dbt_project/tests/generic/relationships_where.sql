{#- Fails on rows (meeting from_condition) whose column has no match in `to`.`field` among
    the rows meeting to_condition, as dbt_utils.relationships_where: for example a current
    account version whose customer has no current version. -#}
{% test relationships_where(
    model, column_name, to, field, from_condition='1 = 1', to_condition='1 = 1', key_column=none
) %}
    {{ return(adapter.dispatch('test_relationships_where', 'ledgerflow')(
        model, column_name, to, field, from_condition, to_condition, key_column
    )) }}
{% endtest %}
