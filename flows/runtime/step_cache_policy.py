"""Prefect's cache policy for the run's steps (which key a run gets: flows/steps/step_cache.py)."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import CacheKeyFnPolicy

# The parameter of a cached step that carries the run's key.
CACHE_KEY_PARAMETER = "cache_key"


def _step_key(context: Any, parameters: dict[str, Any]) -> str | None:
    run_key = parameters.get(CACHE_KEY_PARAMETER)
    return f"{context.task.name}-{run_key}" if run_key else None


# A step's key is its task's name and the run's key; a step given no key is not cached.
STEP_CACHE = CacheKeyFnPolicy(cache_key_fn=_step_key)
