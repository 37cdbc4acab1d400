"""P, Prefect's own floor: an empty flow run, started as its own process.

Run exactly like `ledgerflow run` runs, in the same API mode (ephemeral unless
PREFECT_API_URL is set) and with the same Prefect home, so process start, imports, the
API's start and the flow run's bookkeeping are all in it and nothing else is.
"""

from __future__ import annotations

# First, as in `ledgerflow run`: the pipeline's Prefect settings (the ephemeral API's start
# timeout) are in the environment before Prefect reads it.
import flows.config  # noqa: F401

# isort: split
from prefect import flow


@flow(name="ledgerflow-bench-empty-flow")
def empty_flow() -> None:
    """Does nothing: what remains is Prefect's cost."""


if __name__ == "__main__":
    empty_flow()
