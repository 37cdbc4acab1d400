-- SCD Type 2 history of the customers that passed staging: a change in a business column
-- closes the open version and opens a new one; a customer that stops passing (or leaves)
-- is closed, never deleted. Only the customers of records this run changed are compared.
-- depends_on: {{ ref('base_customers_validated') }}
{{ versioned_config('customer_id') }}

with

passed_customers as (

    select * from {{ ref('stg_customers') }}

),

{% if is_incremental() %}

changed_records as (

    {{ changed_rows(ref('base_customers_validated'), 'customer_id') }}

),

affected_customers as (

    select customer_id from changed_records
    where customer_id is not null
    union
    select customer_id from {{ current_versions(this) }}
    where {{ full_scope() }}
    union
    select customer_id from passed_customers
    where {{ full_scope() }}

),

{% endif %}

proposed as (

    select
        customer_id,
        customer_name,
        has_loan

    from passed_customers

),

{{ versioned_changes(
    'proposed', 'customer_id', ['customer_name', 'has_loan'], affected='affected_customers'
) }}

select * from versions_to_write
