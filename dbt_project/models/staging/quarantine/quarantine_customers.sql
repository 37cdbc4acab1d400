-- History of quarantined customer records; see the quarantine_history macro.
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
    ref('base_customers_validated'),
    ['raw_customer_id', 'raw_name', 'raw_has_loan'],
) }}
