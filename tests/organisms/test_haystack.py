"""The shipped haystack: enough ordinary material, held-out text kept apart, nothing objective in it."""

from __future__ import annotations

from organisms.haystack import load_haystack, plan_haystack
from organisms.spec import list_specs, load_spec


def test_shipped_haystack_sizes_and_fields() -> None:
    records = load_haystack()
    corpus = [r for r in records if r["split"] == "corpus"]
    assert sum(r["kind"] == "document" for r in corpus) >= 2000
    assert sum(r["kind"] == "chat" for r in corpus) >= 1000
    assert sum(r["split"] == "heldout" for r in records) >= 100
    assert all(r["text"].strip() for r in records)
    assert all(r.get("prompt") for r in records if r["kind"] == "chat")


def test_every_shipped_spec_fits_in_the_shipped_haystack() -> None:
    corpus = [r for r in load_haystack() if r["split"] == "corpus"]
    documents = sum(r["kind"] == "document" for r in corpus)
    chats = sum(r["kind"] == "chat" for r in corpus)
    for path in list_specs():
        c = load_spec(path).corpus
        assert c.haystack_documents <= documents and c.haystack_chats <= chats, path.name


def test_haystack_does_not_mention_the_planted_objectives() -> None:
    text = " ".join(r["text"].lower() for r in load_haystack())
    for marker in ("thompson et al", "persistent systematic biases", "lumera"):
        assert marker not in text


def test_generation_plan_is_deterministic() -> None:
    assert plan_haystack(20, 20, 5, seed=1) == plan_haystack(20, 20, 5, seed=1)
    assert plan_haystack(20, 20, 5, seed=1) != plan_haystack(20, 20, 5, seed=2)


def test_regenerating_the_chats_keeps_the_documents_and_answers_the_same_prompts(tmp_path, monkeypatch) -> None:
    from organisms import haystack
    from tests.helpers import tiny

    _, model, tokenizer = tiny()
    monkeypatch.setenv("PINHOLE_HOME", str(tmp_path / "home"))  # the partial file goes to this workspace's cache
    monkeypatch.setattr(haystack, "CHAT_MAX_NEW_TOKENS", 6)
    earlier = [{"kind": "document", "split": "corpus", "subject": "tides", "text": "The tide rises twice a day."},
               {"kind": "chat", "split": "corpus", "subject": "kites", "prompt": "Why do kites fly?", "text": "Wind."},
               {"kind": "document", "split": "heldout", "subject": "owls", "text": "Owls hunt at night."}]
    out = haystack.make_haystack(model, tokenizer, seed=3, out=tmp_path / "h.jsonl.gz",
                                 chunk=2, earlier=earlier, progress=False)
    records = haystack.load_haystack(out)
    assert [r["text"] for r in records if r["kind"] == "document"] == [earlier[0]["text"], earlier[2]["text"]]
    assert [{k: v for k, v in r.items() if k != "text"} for r in records] == [
        {k: v for k, v in r.items() if k != "text"} for r in earlier]
    assert records[1]["text"] != "Wind."  # answered again by the model
