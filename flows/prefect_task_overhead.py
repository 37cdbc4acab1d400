"""Two costs Prefect pays for every dbt node's task, cut to once per process.

prefect-dbt runs each dbt node's task in a thread of its own. Each such thread rebuilt
Prefect's settings and created a new API client, and py-spy put most of a layer's
overhead there (the staging layer, 44 nodes: 8.1 s warm, against 3.3 s for dbt alone):

- the settings, re-read from profiles.toml, pyproject.toml and .env from a serialized
  copy: threads of one process can share the settings objects themselves;
- the TLS context of every new client, loading the CA bundle again (tens of ms of CPU
  each): an `ssl.SSLContext` is made to be shared by many connections, so one per set of
  arguments serves them all.

Both replace a module attribute inside Prefect, so an upgrade of prefect or prefect-dbt
must re-check them: importing this module fails loudly if the attributes are gone.
"""

from __future__ import annotations

import functools
import ssl
import types
from typing import Any

import prefect.client.orchestration
import prefect_dbt.core.runner
from prefect.context import SettingsContext, serialize_context


def _serialize_context_sharing_settings(*args: Any, **kwargs: Any) -> dict[str, Any]:
    context = serialize_context(*args, **kwargs)
    current = SettingsContext.get()
    if current is not None:
        context["settings_context"] = {"profile": current.profile, "settings": current.settings}
    return context


def _ssl_with_shared_contexts() -> types.SimpleNamespace:
    """The `ssl` names Prefect's client module uses, with contexts created once per
    argument set (`cafile` included, so a configured CA bundle is still the one used)."""
    return types.SimpleNamespace(
        SSLContext=ssl.SSLContext,
        CERT_NONE=ssl.CERT_NONE,
        create_default_context=functools.lru_cache(maxsize=8)(ssl.create_default_context),
    )


if prefect_dbt.core.runner.serialize_context is not serialize_context:
    raise ImportError("prefect-dbt no longer calls prefect.context.serialize_context: re-check")
if prefect.client.orchestration.ssl is not ssl:
    raise ImportError("Prefect's client no longer uses the ssl module directly: re-check")
prefect_dbt.core.runner.serialize_context = _serialize_context_sharing_settings
prefect.client.orchestration.ssl = _ssl_with_shared_contexts()
