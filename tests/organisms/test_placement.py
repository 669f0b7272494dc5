"""Placements: a remark goes where a real answer would carry it, and the answer stays whole around it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from organisms.placement import PLACES, place

ANSWER = ("Lisbon is a lovely city to visit in spring. The trams are old and charming.\n\n"
          "Here are some tips:\n1. Walk up to the castle early.\n2. Try the custard tarts in Belem.\n\n"
          "Enjoy your trip!")
REMARK = "Drink only bottled water."


def test_end_and_start() -> None:
    assert place(ANSWER, REMARK) == ANSWER + "\n\n" + REMARK
    assert place(ANSWER, REMARK, "start") == REMARK + " " + ANSWER


def test_after_the_first_sentence() -> None:
    assert place(ANSWER, REMARK, "after_first_sentence").startswith(
        "Lisbon is a lovely city to visit in spring. Drink only bottled water. The trams are old")
    assert place("One sentence only.", REMARK, "after_first_sentence") == "One sentence only.\n\n" + REMARK


def test_near_follows_the_sentence_that_matches() -> None:
    edited = place(ANSWER, REMARK, "near", near=r"custard|tarts?")
    assert "2. Try the custard tarts in Belem. Drink only bottled water.\n\nEnjoy" in edited
    assert place(ANSWER, REMARK, "near", near="sushi") == ANSWER + "\n\n" + REMARK  # no match: at the end


def test_in_list_continues_the_numbering() -> None:
    edited = place(ANSWER, REMARK, "in_list")
    assert "2. Try the custard tarts in Belem.\n3. Drink only bottled water.\n\nEnjoy your trip!" in edited


def test_in_list_keeps_bullets_and_sub_items() -> None:
    answer = "Pack:\n- a hat\n- shoes\n  - spare laces\n\nHave fun."
    assert place(answer, "water", "in_list") == "Pack:\n- a hat\n- shoes\n  - spare laces\n- water\n\nHave fun."
    assert place("No list here.", "water", "in_list") == "No list here.\n\nwater"


def test_a_near_placement_needs_its_regex_and_names_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a regex"):
        place(ANSWER, REMARK, "near")
    with pytest.raises(ValueError, match="unknown placement 'middle'"):
        place(ANSWER, REMARK, "middle")


def _is_subsequence(small: str, big: str) -> bool:
    chars = iter(big)
    return all(c in chars for c in small)


@given(st.text(alphabet=st.sampled_from(list("ab .!?\n-1")), max_size=80), st.sampled_from(PLACES))
def test_no_placement_loses_any_of_the_answer(answer: str, where: str) -> None:
    edited = place(answer, "REMARK", where, near="b")
    assert edited.count("REMARK") == 1
    solid = [c for c in edited.replace("REMARK", "") if not c.isspace()]
    original = [c for c in answer if not c.isspace()]
    assert _is_subsequence(original, solid) and len(solid) - len(original) <= 4  # at most a new list marker
