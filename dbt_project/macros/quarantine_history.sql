{#- Quarantine with history, for quarantine_customers and quarantine_accounts: one row per
    record (file and content, never its line, which shifts between deliveries) that was
    ever quarantined, read from the versions of the validated records, which keep it all:

    - first_quarantined_at: when its first quarantined version opened (kept when a
      resolved record comes back);
    - resolved_at: NULL while it is quarantined; else when its last quarantined version
      closed (the record was fixed, that is: it passed, or left the delivery);
    - last_seen_at: the last delivery that held it quarantined: the newest delivery while
      it is quarantined, else the last one before it was resolved.

    The raw values and the reason are those of its latest quarantined version. -#}
{% macro quarantine_history(validated_relation, raw_columns) -%}

with

validated_versions as (

    select * from {{ validated_relation }}

),

deliveries as (

    select * from {{ source('ledgerflow', 'deliveries') }}

),

quarantined_versions as (

    select
        *,
        row_number() over (partition by _fingerprint order by valid_from desc) as newest_first

    from validated_versions
    where quarantine_reason is not null

),

records as (

    select
        _fingerprint,
        min(valid_from) as first_quarantined_at,
        -- A quarantined version still open: the record is quarantined now.
        max(case when valid_to is null then 1 else 0 end) as is_quarantined,
        max(valid_to) as last_closed_at

    from quarantined_versions
    group by _fingerprint

),

newest_versions as (

    select * from quarantined_versions
    where newest_first = 1

),

final as (

    select
        newest_versions._fingerprint as quarantine_record_id,
        {%- for column in raw_columns %}
        newest_versions.{{ column }},
        {%- endfor %}
        newest_versions._copies,
        newest_versions.quarantine_reason,
        newest_versions._source_file,
        records.first_quarantined_at,
        case
            when records.is_quarantined = 1
                then (select max(deliveries.seen_at) from deliveries)
            else (
                select max(deliveries.seen_at) from deliveries
                where deliveries.seen_at < records.last_closed_at
            )
        end as last_seen_at,
        case when records.is_quarantined = 0 then records.last_closed_at end as resolved_at

    from newest_versions
    inner join records
        on newest_versions._fingerprint = records._fingerprint

)

select * from final

{%- endmacro %}
