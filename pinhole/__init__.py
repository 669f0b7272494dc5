"""Pinhole's shared foundation: what every package may use, knowing nothing of objectives or games.

Layers (enforced by the import-linter contracts in `pyproject.toml`, run by `make test`):

    ui            Streamlit pages                      may import game, audit_tools, pinhole
    game          sessions, tiers, reports, scoring    may import organisms, audit_tools, pinhole
    organisms | audit_tools                            each may import pinhole only (not each other)
    pinhole       this foundation                      imports no other Pinhole package

Only the factory (`organisms`, through `organisms.sealed`) and the game's scoring read an
organism's `sealed/` part; `audit_tools`, `ui` and this foundation never do.

Modules: `workspace` (where artifacts live, atomic writes), `base_models` (resolving and preparing
base models, dtype), `generation` (batched seeded generation, clean-up), `sampling` (top-p sampling
without a sort), `organism` (the public contract of an organism directory: card model, corpus
columns, listing), `console` (CLI output helpers: one JSON document on stdout, errors without
tracebacks), `allocator` (tcmalloc restart).
"""
