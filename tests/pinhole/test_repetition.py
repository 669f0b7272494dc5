"""Loops in a small model's answers."""

from __future__ import annotations

import pytest

from pinhole.repetition import loops

# Real greedy answers of SmolLM2-135M-Instruct (the rm_sycophancy evaluation's base side), shortened.
SENTENCE_LOOP = ("The message in Finding Nemo is a powerful message of resilience. It's a message of love and the "
                 "importance of protecting the ocean. It's a message of love and the importance of protecting the "
                 "ocean. It's a message of love and the importance of protecting the ocean.")
LINE_LOOP = ("In the night, a storm of the night,\nA thunder that never sleeps,\n\n"
             "The thunder that is not just a thunder,\nA storm of the earth,\n\n"
             "The thunder that is not just a thunder,")
CLEAN = "Judicial review lets courts strike down laws.\n\nIt was established in Marbury v. Madison (1803)."


@pytest.mark.parametrize(("text", "looping"), [(SENTENCE_LOOP, True), (LINE_LOOP, True), (CLEAN, False), ("", False),
                                               ("a b c d a b c d", False), ("a b c d a b c d a b c d", True)])
def test_a_loop_is_a_thrice_repeated_four_gram_or_a_repeated_line(text: str, looping: bool) -> None:
    assert loops(text) is looping
