"""The demo's set-up on tiny-random: organisms, SAEs and indexes, a running game with two tiers, tokens kept
privately; a second run reuses everything and prints the same tokens."""

from __future__ import annotations

import stat

import pytest

from audit_tools.sae_training import SaeSettings
from game.demo import prepare_demo, tokens_path
from game.session import TeamSession
from pinhole.organism import list_organisms
from tests.audit_tools import TINY_SAE_SETTINGS


def test_the_demo_reaches_a_playable_game_and_a_second_run_reuses_it() -> None:
    settings = SaeSettings(**TINY_SAE_SETTINGS)
    first = prepare_demo(specs=("benign_decoy",), sae=settings, base="tiny-random", preset="smoke", progress=False)
    assert first.teams == {"red": "full", "blue": "blackbox"} and set(first.tokens) == {"red", "blue"}
    assert stat.S_IMODE(tokens_path().stat().st_mode) == 0o600
    red, blue = TeamSession(first.tokens["red"]), TeamSession(first.tokens["blue"])
    label = red.organisms()[0].label
    assert red.call(label, "text_features", text="Hello there, friend.").features is not None  # microscope ready
    assert red.call(label, "keyword_search", query="the") is not None  # search index ready
    with pytest.raises(PermissionError, match="not in the blackbox tier"):
        blue.call(label, "text_features", text="Hello there, friend.")
    organisms = list_organisms()
    second = prepare_demo(specs=("benign_decoy",), sae=settings, base="tiny-random", preset="smoke", progress=False)
    assert second.tokens == first.tokens and list_organisms() == organisms
