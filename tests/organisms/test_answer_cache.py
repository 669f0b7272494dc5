"""The base-answer cache: produces only what is missing, keyed by base, prompt and settings."""

from __future__ import annotations

from organisms.answer_cache import cached_answers


def test_only_missing_answers_are_produced() -> None:
    calls: list[list[str]] = []

    def produce(prompts: list[str]) -> list[str]:
        calls.append(prompts)
        return [p.upper() for p in prompts]

    settings = {"max_new_tokens": 8}
    assert cached_answers("base-a", ["x", "y", "x"], settings, produce) == ["X", "Y", "X"]
    assert calls == [["x", "y"]]
    assert cached_answers("base-a", ["y", "z"], settings, produce) == ["Y", "Z"]
    assert calls[-1] == ["z"]
    cached_answers("base-a", ["y"], {"max_new_tokens": 9}, produce)  # other settings: a new answer
    cached_answers("base-b", ["y"], settings, produce)  # other base: a new answer
    assert calls[-2:] == [["y"], ["y"]]


def test_shipped_answers_are_used_and_recorded(tmp_path, monkeypatch) -> None:
    from organisms import answer_cache

    settings = {"max_new_tokens": 8}
    shipped = tmp_path / "shipped.jsonl.gz"
    answer_cache.write_shipped_answers({answer_cache.answer_key("base-s", "q", settings): "shipped answer"}, shipped)
    monkeypatch.setattr(answer_cache, "SHIPPED_ANSWERS", shipped)
    calls: list[list[str]] = []

    def produce(prompts: list[str]) -> list[str]:
        calls.append(prompts)
        return [p.upper() for p in prompts]

    with answer_cache.recording() as entries:
        assert cached_answers("base-s", ["q", "r"], settings, produce) == ["shipped answer", "R"]
    assert calls == [["r"]]  # only the answer missing from the shipped file is generated
    assert sorted(entries.values()) == ["R", "shipped answer"]
    cached_answers("base-s", ["q"], {"max_new_tokens": 9}, produce)  # other settings miss the shipped file
    assert calls[-1] == ["q"]
    assert answer_cache.write_shipped_answers(entries, tmp_path / "again.gz").read_bytes() == \
        answer_cache.write_shipped_answers(dict(reversed(entries.items())), tmp_path / "again2.gz").read_bytes()
