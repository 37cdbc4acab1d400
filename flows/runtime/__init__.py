"""Plumbing every step stands on: the warehouse connection and lock, logging, the plain
text of messages, and the version-guarded patches of other libraries."""
