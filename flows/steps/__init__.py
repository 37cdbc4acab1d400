"""The pipeline's steps, in the order the flow runs them; each step's Prefect task is
defined next to the work it does."""
