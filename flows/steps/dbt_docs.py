"""dbt's static docs beside the dashboard (`dbt_docs.html`), written again only when the
code changed: a run with the same code would pay a few seconds for the same pages.

The file carries the code fingerprint it was generated from (flows/steps/step_cache.py,
the one that decides whether a run's results can be reused) in a comment at its end, so
the check is reading a few hundred bytes, and a copied or restored file is judged by what
it says rather than by a record kept elsewhere. The docs depend on the code alone: the
catalog dbt adds (columns and types) is what the models define.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.runtime import wap
from flows.runtime.log import step_logger
from flows.steps.dbt_layers import DbtProject
from flows.steps.step_cache import code_fingerprint

DOCS_NAME = "dbt_docs.html"
_STAMP = "<!-- ledgerflow code fingerprint {} -->\n"
_TAIL_BYTES = 256
_STAMPED = re.compile(r"<!-- ledgerflow code fingerprint (\w+) -->\s*$")


def docs_fingerprint(path: Path) -> str | None:
    """The code fingerprint a docs file was generated from; None for none or no file."""
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        handle.seek(max(path.stat().st_size - _TAIL_BYTES, 0))
        tail = handle.read().decode("utf-8", errors="replace")
    found = _STAMPED.search(tail)
    return found.group(1) if found else None


# NO_CACHE: the project object is not a cache key; the fingerprint check below is the cache.
@task(name="write-dbt-docs", cache_policy=NO_CACHE)
def write_dbt_docs(dbt: DbtProject, output_dir: Path) -> Path:
    """The docs file in the output folder, generated if its code fingerprint is not the
    code's."""
    path = output_dir / DOCS_NAME
    fingerprint = code_fingerprint()
    if docs_fingerprint(path) == fingerprint:
        return path
    started = time.perf_counter()
    static = dbt.generate_static_docs()
    wap.write_durably(path, static.read_text(encoding="utf-8") + _STAMP.format(fingerprint))
    step_logger(__name__).info(
        "dbt docs written in %.1f s: %s", time.perf_counter() - started, path
    )
    return path
