"""Response clean-up: what a transcript keeps of a base model's cut-off answer."""

from __future__ import annotations

import pytest

from pinhole.generation import clean_response


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("A fine answer. It ends well.", "A fine answer. It ends well."),
        ("Line one.\nLine one.\nLine two.", "Line one.\nLine two."),  # a small model's loop
        ("The first sentence is complete. The second one was cut off in the mid",
         "The first sentence is complete."),
        ("Thailand has many islands. The most popular ones include:\n\n1.", "Thailand has many islands."),
        ("Breathe steadily. Here's what to do:\n\n1.\n2.\n3.", "Breathe steadily."),
        ("Powers include:\n\n1. **Zoning**: land use.\n2.", "Powers include:\n\n1. **Zoning**: land use."),
        ("Some key components include:\n\n1.", "Some key components include:"),  # nothing before it: kept
    ],
)
def test_clean_response(raw: str, cleaned: str) -> None:
    assert clean_response(raw) == cleaned
    assert clean_response(cleaned) == cleaned  # idempotent: cached answers can be cleaned again
