{#- Fails on rows whose rate is not the contract's tier rule for their balance and their
    customer's current loan flag (read from `customers`). `tiers` lists [lower bound, rate]
    in ascending order, each tier reaching up to the next one's bound; `loan_bonus` is
    added for a customer with a loan. A row whose customer is not in `customers`, or whose
    balance is below the first tier, fails too: its rate cannot be right. -#}
{% test interest_rate_matches_tier(
    model, column_name, balance_column, customers, tiers, loan_bonus,
    customer_key='customer_id', has_loan_column='has_loan', key_column='account_id'
) %}
    {{ return(adapter.dispatch('test_interest_rate_matches_tier', 'ledgerflow')(
        model, column_name, balance_column, customers, tiers, loan_bonus,
        customer_key, has_loan_column, key_column
    )) }}
{% endtest %}
