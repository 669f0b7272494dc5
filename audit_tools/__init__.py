"""Audit tools: a library for auditing a model organism (targets, probes, batteries, training-data search,
sandboxed SQL). It reads only an organism's team-facing files and knows nothing of games."""
