-- Every delivered account record (a distinct content, with its number of copies), parsed,
-- with the first quarantine reason that applies (NULL when it passes); versioned by record.
-- The last two reasons need the customers file, which is why this staging model,
-- unusually, joins: quarantine is decided in staging by contract.
--
-- A run parses only the contents that ingestion added, and decides the reasons that
-- depend on other rows again only where they can have changed: the duplicate rule for
-- every account id that a new or removed content carries, and the customer rules for
-- every account of a customer whose records changed. Every other record keeps its version
-- and is not read.
{{ versioned_config('_fingerprint') }}

with

account_records as (

    select * from {{ source('ledgerflow', 'account_records') }}

),

validated_customers as (

    select * from {{ current_versions(ref('base_customers_validated')) }}

),

{% if is_incremental() %}

-- Tonight's new contents (opened by this run: the raw table is appended to in run order,
-- so the stamp prunes it), or every current one on a full-scope run.
records_to_parse as (

    select * from account_records
    where
        valid_to is null
        and ({{ full_scope() }} or valid_from = {{ run_timestamp() }})

),

{% else %}

records_to_parse as (

    select * from account_records
    where valid_to is null

),

{% endif %}

cleaned as (

    select
        _fingerprint,
        _copies,
        accountid as raw_account_id,
        customerid as raw_customer_id,
        balance as raw_balance,
        accounttype as raw_account_type,
        {{ clean_text('accountid') }} as account_id,
        {{ clean_text('customerid') }} as customer_id_text,
        {{ clean_text('balance') }} as balance_text,
        lower({{ clean_text('accounttype') }}) as account_type,
        _source_file

    from records_to_parse

),

parsed as (

    select
        *,
        {{ parse_positive_bigint('customer_id_text') }} as customer_id,
        {{ parse_money('balance_text') }} as balance_amount

    from cleaned

),

parsed_records as (

    select
        _fingerprint,
        _copies,
        raw_account_id,
        raw_customer_id,
        raw_balance,
        raw_account_type,
        account_id,
        customer_id,
        account_type,
        balance_amount,
        case
            when account_id = '' then 'missing_account_id'
            when customer_id_text = '' then 'missing_customer_id'
            when customer_id is null then 'invalid_customer_id'
            when {{ is_missing_money('balance_text') }} then 'missing_balance'
            when balance_amount is null then 'invalid_balance'
            when balance_amount < 0 then 'negative_balance'
            when account_type = '' then 'missing_account_type'
            when account_type not in ('savings', 'checking') then 'invalid_account_type'
        end as row_reason,
        _source_file

    from parsed

),

{% if is_incremental() %}

removed_records as (

    select _fingerprint from account_records
    where valid_to = {{ run_timestamp() }}

),

-- Account ids whose duplicate verdict can change: those of a content that came or went.
affected_account_ids as (

    select account_id from parsed_records
    union
    select account_id from {{ current_versions(this) }}
    where _fingerprint in (select removed._fingerprint from removed_records as removed)

),

-- Customers whose verdict (known, passed) can change: any of their records changed.
affected_customer_ids as (

    {{ changed_rows(ref('base_customers_validated'), 'customer_id') }}

),

-- The records decided again, by account id: an affected id's, and every account of an
-- affected customer's, with all the records that share such an id (the duplicate rule
-- counts them together). Every other record keeps its version unread.
decided_account_ids as (

    select account_id from affected_account_ids
    union
    select account_id from {{ current_versions(this) }}
    where customer_id in (select ids.customer_id from affected_customer_ids as ids)

),

-- Still delivered, parsed by an earlier run, and decided again.
kept_records as (

    select
        previous._fingerprint,
        previous._copies,
        previous.raw_account_id,
        previous.raw_customer_id,
        previous.raw_balance,
        previous.raw_account_type,
        previous.account_id,
        previous.customer_id,
        previous.account_type,
        previous.balance_amount,
        previous.row_reason,
        previous._source_file

    from {{ current_versions(this) }} as previous
    where
        previous._fingerprint not in (
            select records._fingerprint from parsed_records as records
        )
        -- still delivered: the open versions are those of the current records, but the
        -- ones ingestion closed tonight
        and previous._fingerprint not in (
            select removed._fingerprint from removed_records as removed
        )
        and (
            previous.account_id in (select ids.account_id from decided_account_ids as ids)
            or {{ full_scope() }}
        )

),

present_records as (

    select * from parsed_records
    union all
    select * from kept_records

),

affected_records as (

    select _fingerprint from present_records
    union
    select _fingerprint from removed_records

),

{% else %}

present_records as (

    select * from parsed_records

),

{% endif %}

-- Any customers.csv row whose id parses to an id of these records, passed or not (on a
-- nightly run, only the ids at hand are looked up: a semi join on the few records).
delivered_customer_ids as (

    select distinct customer_id
    from validated_customers
    {% if is_incremental() %}
    where
        customer_id is not null
        and customer_id in (select present.customer_id from present_records as present)
    {% else %}
    where customer_id is not null
    {% endif %}

),

passed_customer_ids as (

    select customer_id
    from validated_customers
    {% if is_incremental() %}
    where
        quarantine_reason is null
        and customer_id in (select present.customer_id from present_records as present)
    {% else %}
    where quarantine_reason is null
    {% endif %}

),

-- Duplicates count only rows that passed every earlier rule, by the trimmed id text
-- (present_records holds every record of each id it holds).
passing_rows_per_id as (

    select
        account_id,
        sum(_copies) as passing_rows

    from present_records
    where row_reason is null
    group by account_id

),

own_reasons as (

    select
        present_records.*,
        coalesce(
            present_records.row_reason,
            case when passing_rows_per_id.passing_rows > 1 then 'duplicate_account_id' end
        ) as own_reason

    from present_records
    left join passing_rows_per_id
        on present_records.account_id = passing_rows_per_id.account_id

),

proposed as (

    select
        own_reasons._fingerprint,
        own_reasons._copies,
        own_reasons.raw_account_id,
        own_reasons.raw_customer_id,
        own_reasons.raw_balance,
        own_reasons.raw_account_type,
        own_reasons.account_id,
        own_reasons.customer_id,
        own_reasons.account_type,
        own_reasons.balance_amount,
        own_reasons.row_reason,
        coalesce(
            own_reasons.own_reason,
            case
                when passed_customer_ids.customer_id is not null then null
                when delivered_customer_ids.customer_id is not null then 'customer_quarantined'
                else 'unknown_customer'
            end
        ) as quarantine_reason,
        own_reasons._source_file

    from own_reasons
    left join passed_customer_ids
        on own_reasons.customer_id = passed_customer_ids.customer_id
    left join delivered_customer_ids
        on own_reasons.customer_id = delivered_customer_ids.customer_id

),

{{ versioned_changes(
    'proposed',
    '_fingerprint',
    ['_copies', 'raw_account_id', 'raw_customer_id', 'raw_balance', 'raw_account_type',
     'account_id', 'customer_id', 'account_type', 'balance_amount', 'row_reason',
     'quarantine_reason', '_source_file'],
    affected='affected_records',
) }}

select * from versions_to_write
