"""Plain text for every message a person reads, made once where the message is born.

dbt colours its unit-test diffs with terminal escape sequences, and DuckDB errors and
delivered values can carry any character at all. A message goes on to the quality report,
the dashboard, Slack, the run's state in Prefect, artifacts and the console; cleaned where
it is made, none of them needs to know.
"""

from __future__ import annotations

import re

# ECMA-48 escape sequences: CSI (colours, cursor moves), the string commands OSC, DCS, SOS,
# PM and APC up to their terminator (BEL or ESC \), and the short ones (ESC ( B, ESC 7).
# What follows an ESC that starts none of them is left, the ESC itself escaped below.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])"
)
# C0, DEL and C1: Unicode's control characters (category Cc).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain_text(text: str, *, multiline: bool = False) -> str:
    """`text` without terminal escape sequences, its other control characters shown.

    Escape sequences are removed: a colour or a cursor move means nothing off a terminal.
    Every other control character (C0, DEL, C1, a lone ESC) becomes its Python escape,
    `\\x07`, `\\x00`, `\\x9b`, so a stray character in a delivered value stays visible
    rather than vanishing or ringing a bell. 8-bit C1 introducers such as `\\x9b` (CSI) are
    shown like any C1 character, not parsed. Newline and tab are kept in `multiline` text
    and shown as `\\n` and `\\t` in one-line text (a table cell, a bullet), where a line
    break would pass for the end of the message.

    Plain text stays as it is, so applying this twice changes nothing.
    """
    control = _CONTROL_BUT_LINES if multiline else _CONTROL
    return control.sub(_escaped, _ESCAPE_SEQUENCE.sub("", text))


def _escaped(control: re.Match[str]) -> str:
    return control.group().encode("unicode_escape").decode("ascii")
