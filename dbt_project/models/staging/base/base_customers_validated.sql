-- Every delivered customer record (a distinct content, with its number of copies), parsed,
-- with the first quarantine reason that applies (NULL when it passes); versioned by record.
--
-- A record's own rules depend only on its values, so a run parses only the contents that
-- ingestion added. The duplicate rule depends on the other records with the same parsed
-- id, so it is decided again for every id that a new or removed content carries; every
-- other record keeps its version.
{{ versioned_config('_fingerprint') }}

with

customer_records as (

    select * from {{ source('ledgerflow', 'customer_records') }}

),

{% if is_incremental() %}

-- Tonight's new contents (opened by this run: the raw table is appended to in run order,
-- so the stamp prunes it), or every current one on a full-scope run.
records_to_parse as (

    select * from customer_records
    where
        valid_to is null
        and ({{ full_scope() }} or valid_from = {{ run_timestamp() }})

),

{% else %}

records_to_parse as (

    select * from customer_records
    where valid_to is null

),

{% endif %}

cleaned as (

    select
        _fingerprint,
        _copies,
        customerid as raw_customer_id,
        name as raw_name,
        hasloan as raw_has_loan,
        {{ clean_text('customerid') }} as customer_id_text,
        {{ clean_text('name') }} as customer_name_text,
        {{ clean_text('hasloan') }} as has_loan_text,
        _source_file

    from records_to_parse

),

parsed as (

    select
        *,
        {{ parse_positive_bigint('customer_id_text') }} as customer_id,
        {{ collapse_whitespace('customer_name_text') }} as customer_name,
        {{ parse_has_loan('has_loan_text') }} as has_loan

    from cleaned

),

parsed_records as (

    select
        _fingerprint,
        _copies,
        raw_customer_id,
        raw_name,
        raw_has_loan,
        customer_id,
        customer_name,
        has_loan,
        case
            when customer_id_text = '' then 'missing_customer_id'
            when customer_id is null then 'invalid_customer_id'
            when customer_name_text = '' then 'missing_customer_name'
            when has_loan_text = '' then 'missing_has_loan'
            when has_loan is null then 'invalid_has_loan'
        end as row_reason,
        _source_file

    from parsed

),

{% if is_incremental() %}

removed_records as (

    select _fingerprint from customer_records
    where valid_to = {{ run_timestamp() }}

),

-- Ids whose duplicate verdict can change: those carried by a content that came or went.
affected_ids as (

    select customer_id from parsed_records
    union
    select customer_id from {{ current_versions(this) }}
    where _fingerprint in (select removed._fingerprint from removed_records as removed)

),

-- Still delivered, parsed by an earlier run, and sharing an id with a changed record
-- (the duplicate rule counts them together). Every other record keeps its version unread.
kept_records as (

    select
        previous._fingerprint,
        previous._copies,
        previous.raw_customer_id,
        previous.raw_name,
        previous.raw_has_loan,
        previous.customer_id,
        previous.customer_name,
        previous.has_loan,
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
            previous.customer_id in (select ids.customer_id from affected_ids as ids)
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

-- Duplicates count only rows that passed every earlier rule, by the parsed id, and all
-- of them are quarantined: which one is right needs a person.
-- (present_records holds every record of each id it holds.)
passing_rows_per_id as (

    select
        customer_id,
        sum(_copies) as passing_rows

    from present_records
    where row_reason is null
    group by customer_id

),

proposed as (

    select
        present_records._fingerprint,
        present_records._copies,
        present_records.raw_customer_id,
        present_records.raw_name,
        present_records.raw_has_loan,
        present_records.customer_id,
        present_records.customer_name,
        present_records.has_loan,
        present_records.row_reason,
        coalesce(
            present_records.row_reason,
            case when passing_rows_per_id.passing_rows > 1 then 'duplicate_customer_id' end
        ) as quarantine_reason,
        present_records._source_file

    from present_records
    left join passing_rows_per_id
        on present_records.customer_id = passing_rows_per_id.customer_id

),

{{ versioned_changes(
    'proposed',
    '_fingerprint',
    ['_copies', 'raw_customer_id', 'raw_name', 'raw_has_loan', 'customer_id', 'customer_name',
     'has_loan', 'row_reason', 'quarantine_reason', '_source_file'],
    affected='affected_records',
) }}

select * from versions_to_write
