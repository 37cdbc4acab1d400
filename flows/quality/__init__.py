"""What a run found: checks, the quality report, key-column counts, Prefect artifacts."""
