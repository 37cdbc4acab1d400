{#- Parsers for cleaned text. Each returns NULL when the text breaks the contract's rule,
    so "invalid" means "not missing, parsed to NULL". The text is validated with the
    contract's pattern first because try_cast alone accepts '+42', '1e3', '.5' and rounds
    '100.005'. SQL does not promise to short-circuit AND, so every cast is a safe one. -#}

{#- ^[0-9]+$ in 1 .. 2^63-1, leading zeros allowed ("0042" is 42). The digits without
    leading zeros are compared as text so an out-of-range id is invalid, not an error. -#}
{% macro parse_positive_bigint(text) -%}
    {%- set significant = "regexp_replace(" ~ text ~ ", '^0+', '')" -%}
    case
        when {{ regex_full_match(text, '[0-9]+') }}
            and (
                length({{ significant }}) between 1 and 18
                or (length({{ significant }}) = 19 and {{ significant }} <= '9223372036854775807')
            )
            then {{ safe_cast(text, 'bigint') }}
    end
{%- endmacro %}

{#- ^-?[0-9]+(\.[0-9]{1,2})?$ and |value| <= 1,000,000,000,000,000.00, exactly as
    DECIMAL(18,2): with at most 16 integer digits once leading zeros go, the cast is exact. -#}
{% macro parse_money(text) -%}
    {%- set integer_digits = "length(regexp_replace(regexp_replace(" ~ text ~ ", '^-?0*', ''), '[.].*$', ''))" -%}
    case
        when {{ regex_full_match(text, '-?[0-9]+([.][0-9]{1,2})?') }}
            and {{ integer_digits }} <= 16
            and abs({{ safe_cast(text, 'decimal(18, 2)') }}) <= cast('1000000000000000.00' as decimal(18, 2))
            then {{ safe_cast(text, 'decimal(18, 2)') }}
    end
{%- endmacro %}

{% macro parse_has_loan(text) -%}
    case
        when lower({{ text }}) in ('yes', 'y', 'true', '1') then true
        when lower({{ text }}) in ('no', 'n', 'false', '0') then false
    end
{%- endmacro %}

{% macro is_missing_money(text) -%}
    ({{ text }} = '' or lower({{ text }}) in ('null', 'none', 'n/a', 'na'))
{%- endmacro %}
