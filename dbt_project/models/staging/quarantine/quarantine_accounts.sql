-- History of quarantined account records; see the quarantine_history macro.

{{ quarantine_history(
    ref('base_accounts_validated'),
    ['raw_account_id', 'raw_customer_id', 'raw_balance', 'raw_account_type'],
) }}
