"""Plumbing every step stands on: the warehouse connection and lock, logging, and the
version-guarded patches of other libraries."""
