-- History of quarantined customer records; see the quarantine_history macro.

{{ quarantine_history(
    ref('base_customers_validated'),
    ['raw_customer_id', 'raw_name', 'raw_has_loan'],
) }}
