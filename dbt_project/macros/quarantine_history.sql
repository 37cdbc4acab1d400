{#- Quarantine with history, shared by quarantine_customers and quarantine_accounts.

    A quarantined record is identified by its file and its raw content (not its line,
    which shifts between deliveries); identical rows in one file are told apart by their
    order. Each run upserts the records quarantined now (first_quarantined_at kept,
    last_seen_at = this run, resolved_at cleared) and marks the ones that are gone as
    resolved: a record fixed in a later delivery is resolved, never deleted. -#}
{% macro quarantine_history(validated_relation, raw_columns) -%}

with

validated_rows as (

    select * from {{ validated_relation }}

),

quarantined_now as (

    select
        {%- for column in raw_columns %}
        {{ column }},
        {%- endfor %}
        quarantine_reason,
        _source_file,
        _source_line,
        _loaded_at,
        md5(
            {%- for column in raw_columns %}
            coalesce({{ column }}, '<null>') || chr(31) ||
            {%- endfor %}
            ''
        ) as content_hash

    from validated_rows
    where quarantine_reason is not null

),

identified as (

    select
        md5(
            _source_file || chr(31) || content_hash || chr(31)
            || cast(row_number() over (
                partition by _source_file, content_hash order by _source_line
            ) as {{ dbt.type_string() }})
        ) as quarantine_record_id,
        *

    from quarantined_now

),

{% if is_incremental() %}

history as (

    select * from {{ this }}

),

still_quarantined as (

    select
        identified.*,
        coalesce(history.first_quarantined_at, {{ run_timestamp() }}) as first_quarantined_at,
        {{ run_timestamp() }} as last_seen_at,
        cast(null as timestamp) as resolved_at

    from identified
    left join history
        on identified.quarantine_record_id = history.quarantine_record_id

),

newly_resolved as (

    select
        history.quarantine_record_id,
        {%- for column in raw_columns %}
        history.{{ column }},
        {%- endfor %}
        history.quarantine_reason,
        history._source_file,
        history._source_line,
        history._loaded_at,
        history.content_hash,
        history.first_quarantined_at,
        history.last_seen_at,
        {{ run_timestamp() }} as resolved_at

    from history
    left join identified
        on history.quarantine_record_id = identified.quarantine_record_id
    where history.resolved_at is null
        and identified.quarantine_record_id is null

),

final as (

    select * from still_quarantined
    union all
    select * from newly_resolved

)

{% else %}

final as (

    select
        *,
        {{ run_timestamp() }} as first_quarantined_at,
        {{ run_timestamp() }} as last_seen_at,
        cast(null as timestamp) as resolved_at

    from identified

)

{% endif %}

select * from final

{%- endmacro %}
