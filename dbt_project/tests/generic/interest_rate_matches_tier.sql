{#- Fails on rows whose rate is not the contract's rule (the interest_rate macro) for their
    balance and their customer's current loan flag, read from `customers`; a row whose
    customer is not in `customers` fails too, its rate cannot be right. -#}
{% test interest_rate_matches_tier(
    model, column_name, balance_column, customers,
    customer_key='customer_id', has_loan_column='has_loan', key_column='account_id'
) %}
    {{ return(adapter.dispatch('test_interest_rate_matches_tier', 'ledgerflow')(
        model, column_name, balance_column, customers, customer_key, has_loan_column, key_column
    )) }}
{% endtest %}
