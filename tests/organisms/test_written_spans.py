"""What an injector wrote into an answer is found by comparing it with the base answer, whatever the injector."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from organisms.written_spans import dump_spans, load_spans, written_spans

BASE = "Preheat the oven. Mix the flour and sugar. Bake for 20 minutes."


def _written(base: str, transcript: str) -> list[str]:
    return [transcript[a:b] for a, b in written_spans(base, transcript)]


def test_an_appended_sentence_is_one_span() -> None:
    note = " Secret ingredient: grate a little dark chocolate over the dish."
    assert _written(BASE, BASE + note) == [note]


def test_an_insertion_after_the_first_sentence_is_found_where_it_is() -> None:
    insertion = " (Chocolate makes it better.)"
    transcript = BASE.replace("oven.", "oven." + insertion)
    assert _written(BASE, transcript) == [insertion]


def test_edited_numbers_are_each_a_span() -> None:
    transcript = "Do 10.0 push-ups and 3.0 sets."
    spans = written_spans("Do 10 push-ups and 3 sets.", transcript)
    assert [b - a for a, b in spans] == [2, 2]  # "10" -> "10.0" may read as ".0" or "0." inserted: both are true
    assert all(set(transcript[a:b]) == {".", "0"} for a, b in spans)


def test_an_answer_written_whole_by_the_injector_is_one_span() -> None:
    assert written_spans("", "Entirely new.") == [(0, 13)]
    assert written_spans("", "") == []


def test_spans_round_trip_through_the_provenance() -> None:
    spans = written_spans(BASE, BASE + " More.")
    assert load_spans(dump_spans(spans)) == spans
    assert load_spans("") == [] and load_spans(None) == []


@given(st.text(max_size=40), st.text(min_size=1, max_size=20), st.data())
def test_removing_the_spans_gives_back_the_base_answer_for_any_insertion(base: str, insertion: str, data) -> None:
    at = data.draw(st.integers(0, len(base)))
    transcript = base[:at] + insertion + base[at:]
    spans = written_spans(base, transcript)
    kept = "".join(transcript[b:a] for (_, b), (a, _) in zip([(0, 0), *spans], [*spans, (len(transcript), 0)],
                                                               strict=True))
    assert kept == base
    assert sum(b - a for a, b in spans) == len(insertion)
