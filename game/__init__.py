"""Auditing games: teams, access tiers, submissions and scoring. Home of the `pinhole` command."""
