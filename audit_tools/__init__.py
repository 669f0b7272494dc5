"""Audit tools: a library for auditing a model organism (probes, data search, SAEs). Knows nothing of games."""
