-- History of quarantined account records; see the quarantine_history macro.
-- full_refresh=false: a rebuild must never erase when a record was first quarantined.
{{
    config(
        materialized='incremental',
        unique_key='quarantine_record_id',
        incremental_strategy='delete+insert',
        full_refresh=false,
    )
}}

{{ quarantine_history(
    ref('base_accounts_validated'),
    ['raw_account_id', 'raw_customer_id', 'raw_balance', 'raw_account_type'],
) }}
