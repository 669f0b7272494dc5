"""Search an organism's training corpus: BM25 keyword search and semantic search over one DuckDB file.

A `CorpusIndex` is built once per organism corpus and cached under the workspace,
`cache_dir("indexes")/<organism_id>-<key>.duckdb`, where the key hashes the organism id, the
card's corpus SHA-256, the SHA-256 of `corpus.parquet` itself and the index format, so a changed
corpus gets a new index (the stale one is removed). The build writes a temporary file next to the
target and renames it when complete, so an interrupted build leaves nothing half-made; a lock
file keeps two processes from building the same index at once.

The index reads `corpus.parquet` and `card.json` only. It never opens the organism's `sealed/`
directory, and only the public corpus columns (doc_id, kind, text, messages, rejected, n_chars)
are copied in, whatever else the Parquet file holds. The database holds:

    corpus(doc_id PRIMARY KEY, kind, text, messages, rejected, n_chars)
    fts_main_corpus.*            DuckDB's full-text index on corpus.text (porter stemmer, English
                                 stopwords) and its `match_bm25` macro, for auditors' own SQL
    bm25_docs(docid, doc_id, kind), bm25_postings(termid, docid, weight)
                                 each (term, document) pair's BM25 weight (k1=1.2, b=0.75, as
                                 `match_bm25` computes it), sorted by term: a query sums a few
                                 postings instead of scoring every row
    embeddings(doc_id, kind, vec FLOAT[384])  all-MiniLM-L6-v2 of each text's beginning, HNSW (cosine)
    index_meta(key, value)       what the index was built from, and build timings

Searches find the top documents on the narrow tables first and then fetch only their texts
through the primary key, so they stay fast on 100,000 documents.

Extensions come from the installed PyPI wheels (`duckdb-extension-fts`, `-vss`); nothing is
downloaded. Auditors' own SQL over the same file goes through `sql_sandbox.SqlSandbox`.
Every public call reports a `ToolCall` to the optional callback.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from audit_tools import embeddings
from audit_tools.sql_sandbox import SqlSandbox, base_config, load_extensions
from audit_tools.tool_log import ToolCallback, record_call
from pinhole.organism import CORPUS_COLUMNS, CORPUS_FILE, CORPUS_KINDS, CorpusRow, read_card
from pinhole.workspace import cache_dir, canonical_json, file_lock, sha256_bytes, sha256_file

INDEX_VERSION = 1
KINDS = CORPUS_KINDS
PUBLIC_COLUMNS = CORPUS_COLUMNS  # nothing else is copied in
REQUIRED_COLUMNS = ("doc_id", "kind", "text")
MAX_LIMIT = 1_000
SNIPPET_CHARS = 240
MARK_OPEN, MARK_CLOSE = "«", "»"
BM25_K1, BM25_B = 1.2, 0.75  # the defaults of DuckDB's match_bm25
SEMANTIC_OVERSAMPLE = 4  # candidates fetched per wanted hit when a kind filter follows the HNSW search
SEMANTIC_BUCKET = 100  # candidate counts are rounded up to this, so that consecutive pages see the same ranking
EMBED_BATCH_SIZE = 64
# The characters DuckDB's FTS tokenizer turns into spaces (fts_main_<table>.tokenize), for highlighting.
_TOKEN = re.compile(r"""[^\s0-9!@#$%^&*()_+={}\[\]:;<>,.?~\\/|'"`-]+""")


class SearchHit(BaseModel):
    """One search result: the document, its score (BM25, or cosine similarity) and a snippet."""

    doc_id: str
    kind: str
    score: float
    snippet: str
    text: str | None = None


CorpusDocument = CorpusRow  # one row of the public corpus (the foundation's model)


class BuildInfo(BaseModel):
    """What an index was built from and how long the build took (seconds)."""

    organism_id: str
    corpus_sha256: str
    corpus_file_sha256: str
    index_version: int
    model: str
    n_docs: int
    built_at: str
    table_fts_s: float
    embed_s: float
    hnsw_s: float


# ---------------------------------------------------------------------------------------------
# Where the index lives


def _safe_name(organism_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", organism_id).strip("._") or "organism"


def index_path(organism_id: str, corpus_sha256: str, corpus_file_sha256: str) -> Path:
    """The cache file of the index for this organism and corpus."""
    key = sha256_bytes(canonical_json({"organism_id": organism_id, "corpus_sha256": corpus_sha256,
                                       "corpus_file_sha256": corpus_file_sha256, "index_version": INDEX_VERSION,
                                       "model": embeddings.MODEL_NAME,
                                       "dtype": str(embeddings.embedding_dtype())}))[:16]
    return cache_dir("indexes") / f"{index_family(organism_id, corpus_file_sha256)}-{key}.duckdb"


def index_family(organism_id: str, corpus_file_sha256: str) -> str:
    """The indexes of one corpus file share this prefix: copies of an organism with other corpora (same id)
    never replace each other's index, only older index versions of the same corpus are removed."""
    return f"{_safe_name(organism_id)}-{corpus_file_sha256[:12]}"


def _remove_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# ---------------------------------------------------------------------------------------------
# Building


def _read_public_corpus(corpus_path: Path) -> pa.Table:
    """The public columns of corpus.parquet (only those), with errors naming the file and column."""
    if not corpus_path.is_file():
        raise FileNotFoundError(f"{corpus_path}: file not found (an organism directory holds {CORPUS_FILE})")
    try:
        names = pq.read_schema(corpus_path).names
    except Exception as err:
        raise ValueError(f"{corpus_path}: not a readable Parquet file: {err}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{corpus_path}: missing column(s) {', '.join(missing)} (has: {', '.join(names)})")
    return pq.read_table(corpus_path, columns=[c for c in PUBLIC_COLUMNS if c in names])


def _load_corpus_table(con: duckdb.DuckDBPyConnection, table: pa.Table, corpus_path: Path) -> None:
    """Create and fill `corpus` from the public columns, validating ids and kinds."""
    names = set(table.column_names)
    con.register("public_corpus", table)
    try:
        null_ids = con.execute("SELECT count(*) FROM public_corpus WHERE doc_id IS NULL").fetchone()[0]
        if null_ids:
            raise ValueError(f"{corpus_path}: column doc_id: {null_ids} row(s) have no doc_id")
        dup = con.execute("SELECT CAST(doc_id AS VARCHAR), count(*) FROM public_corpus GROUP BY 1 "
                          "HAVING count(*) > 1 ORDER BY 1 LIMIT 1").fetchone()
        if dup:
            raise ValueError(f"{corpus_path}: column doc_id: value {dup[0]!r} appears {dup[1]} times (must be unique)")
        bad = con.execute("SELECT CAST(kind AS VARCHAR), CAST(doc_id AS VARCHAR) FROM public_corpus "
                          "WHERE kind IS NULL OR CAST(kind AS VARCHAR) NOT IN (SELECT unnest(?)) LIMIT 1",
                          [list(KINDS)]).fetchone()
        if bad:
            raise ValueError(f"{corpus_path}: column kind: value {bad[0]!r} (doc_id {bad[1]!r}) is not one of "
                             f"{', '.join(KINDS)}")

        def text_or_empty(column: str) -> str:
            return f"coalesce(CAST({column} AS VARCHAR), '')" if column in names else "''"

        n_chars = ("coalesce(CAST(n_chars AS BIGINT), length(coalesce(CAST(text AS VARCHAR), '')))"
                   if "n_chars" in names else "length(coalesce(CAST(text AS VARCHAR), ''))")
        con.execute("CREATE TABLE corpus (doc_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, text VARCHAR NOT NULL, "
                    "messages VARCHAR NOT NULL, rejected VARCHAR NOT NULL, n_chars BIGINT NOT NULL)")
        con.execute(f"INSERT INTO corpus SELECT CAST(doc_id AS VARCHAR), CAST(kind AS VARCHAR), "
                    f"{text_or_empty('text')}, {text_or_empty('messages')}, {text_or_empty('rejected')}, {n_chars} "
                    f"FROM public_corpus")
    finally:
        con.unregister("public_corpus")


def _build(target: Path, corpus_path: Path, organism_id: str, corpus_sha: str, file_sha: str,
           progress: bool) -> BuildInfo:
    """Build the index into a temporary file next to `target`, then rename it into place."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    wal = tmp.with_name(tmp.name + ".wal")
    try:
        table = _read_public_corpus(corpus_path)
        con = duckdb.connect(str(tmp), config=base_config())
        try:
            load_extensions(con)
            con.execute("SET hnsw_enable_experimental_persistence = true")
            start = time.perf_counter()
            _load_corpus_table(con, table, corpus_path)
            del table
            con.execute("PRAGMA create_fts_index('corpus', 'doc_id', 'text', stemmer = 'porter', "
                        "stopwords = 'english', overwrite = 1)")
            _create_bm25_tables(con)
            table_fts_s = time.perf_counter() - start

            start = time.perf_counter()
            rows = con.execute("SELECT doc_id, kind, text FROM corpus ORDER BY rowid").fetchall()
            vectors = embeddings.embed_cached([text for _, _, text in rows], batch_size=EMBED_BATCH_SIZE,
                                              progress=progress, description=f"Embedding the corpus of {organism_id}")
            flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
            emb = pa.table({"doc_id": pa.array([r[0] for r in rows], pa.string()),
                            "kind": pa.array([r[1] for r in rows], pa.string()),
                            "vec": pa.FixedSizeListArray.from_arrays(flat, embeddings.DIM)})
            del rows
            con.execute(f"CREATE TABLE embeddings (doc_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, "
                        f"vec FLOAT[{embeddings.DIM}] NOT NULL)")
            con.register("new_embeddings", emb)
            con.execute(f"INSERT INTO embeddings SELECT doc_id, kind, CAST(vec AS FLOAT[{embeddings.DIM}]) "
                        f"FROM new_embeddings")
            con.unregister("new_embeddings")
            embed_s = time.perf_counter() - start

            start = time.perf_counter()
            con.execute("CREATE INDEX embeddings_hnsw ON embeddings USING HNSW (vec) WITH (metric = 'cosine')")
            hnsw_s = time.perf_counter() - start

            n_docs = con.execute("SELECT count(*) FROM corpus").fetchone()[0]
            info = BuildInfo(organism_id=organism_id, corpus_sha256=corpus_sha, corpus_file_sha256=file_sha,
                             index_version=INDEX_VERSION, model=embeddings.MODEL_NAME, n_docs=n_docs,
                             built_at=datetime.now(UTC).isoformat(timespec="seconds"),
                             table_fts_s=round(table_fts_s, 3), embed_s=round(embed_s, 3), hnsw_s=round(hnsw_s, 3))
            con.execute("CREATE TABLE index_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
            con.executemany("INSERT INTO index_meta VALUES (?, ?)",
                            [[k, str(v)] for k, v in info.model_dump().items()])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        if wal.exists():
            raise RuntimeError(f"{tmp}: DuckDB left a write-ahead log after CHECKPOINT; the index is not complete")
        os.replace(tmp, target)
        return info
    finally:
        _remove_quietly(tmp, wal)


def _create_bm25_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Precompute every (term, document) BM25 weight from the full-text index, sorted by term."""
    con.execute("CREATE TABLE bm25_docs AS SELECT docs.docid, c.doc_id, c.kind FROM fts_main_corpus.docs AS docs "
                "JOIN corpus AS c ON c.doc_id = docs.name ORDER BY docs.docid")
    con.execute(f"""
        CREATE TABLE bm25_postings AS
        WITH tf AS (SELECT termid, docid, count(*) AS tf FROM fts_main_corpus.terms GROUP BY termid, docid)
        SELECT tf.termid, tf.docid,
               CAST(log(((s.num_docs - d.df) + 0.5) / (d.df + 0.5) + 1)
                    * ((tf.tf * ({BM25_K1} + 1))
                       / (tf.tf + {BM25_K1} * ((1 - {BM25_B}) + {BM25_B} * (docs.len / s.avgdl)))) AS DOUBLE) AS weight
        FROM tf JOIN fts_main_corpus.dict AS d USING (termid) JOIN fts_main_corpus.docs AS docs USING (docid),
             fts_main_corpus.stats AS s
        ORDER BY tf.termid, tf.docid""")


def _remove_stale(target: Path, family: str, indexes: bool = True) -> None:
    """Remove this corpus's abandoned temporary builds and (if `indexes`) its other index versions.

    Call under the build lock. A process still reading a removed index keeps its open file.
    """
    prefix = f"{family}-"
    for path in target.parent.iterdir():
        name = path.name
        stale_index = indexes and name.startswith(prefix) and name.endswith(".duckdb") and path != target
        stale_tmp = name.startswith(f".{prefix}") and (name.endswith(".tmp") or name.endswith(".tmp.wal"))
        if stale_index or stale_tmp:
            _remove_quietly(path)


# ---------------------------------------------------------------------------------------------
# Snippets


def _normalise(token: str) -> str:
    decomposed = unicodedata.normalize("NFKD", token.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _snippet(text: str, spans: list[tuple[int, int, str]], width: int = SNIPPET_CHARS) -> str:
    """A window of about `width` characters around the densest run of matches, matches wrapped in «»."""
    if not spans:
        end = len(text) if len(text) <= width else (text.rfind(" ", 0, width) if " " in text[:width] else width)
        return " ".join(text[:end].split()) + ("…" if end < len(text) else "")
    spans = spans[:500]
    best_start, best_key = 0, (-1, -1)
    for i, (start, _, _) in enumerate(spans):
        window = [s for s in spans[i:] if s[1] <= start + width]
        key = (len({s[2] for s in window}), len(window))
        if key > best_key:
            best_start, best_key = start, key
    lo = max(0, best_start - width // 4)
    if lo > 0:
        space = text.find(" ", lo, best_start)
        lo = space + 1 if space != -1 else lo
    hi = min(len(text), lo + width)
    if hi < len(text):
        space = text.rfind(" ", max(lo, best_start), hi)
        hi = space if space > best_start else hi
    pieces, cursor = [], lo
    for start, end, _ in spans:
        if start >= lo and end <= hi:
            pieces += [text[cursor:start], MARK_OPEN, text[start:end], MARK_CLOSE]
            cursor = end
    pieces.append(text[cursor:hi])
    body = " ".join("".join(pieces).split())
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


# ---------------------------------------------------------------------------------------------
# The index


class CorpusIndex:
    """Keyword (BM25) and semantic search over one organism's corpus; open with `CorpusIndex.open`."""

    def __init__(self, path: Path, built: bool = False, callback: ToolCallback | None = None) -> None:
        """Open a built index file read-only (use `CorpusIndex.open`, which finds or builds it)."""
        self.path = Path(path)
        self.built = built
        self.callback = callback
        self._con: duckdb.DuckDBPyConnection | None = duckdb.connect(str(self.path), read_only=True,
                                                                     config=base_config())
        try:
            load_extensions(self._con)
            meta = dict(self._con.execute("SELECT key, value FROM index_meta").fetchall())
            self.info = BuildInfo.model_validate(meta)
        except duckdb.Error as err:
            self._con.close()
            raise ValueError(f"{self.path}: not a corpus index ({err}); delete the file to rebuild it") from None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._stems: dict[str, str] = {}
        self._stem_lock = threading.Lock()

    @property
    def organism_id(self) -> str:
        return self.info.organism_id

    @property
    def n_docs(self) -> int:
        return self.info.n_docs

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, organism_dir: Path | str, callback: ToolCallback | None = None,
             progress: bool = True) -> CorpusIndex:
        """The index of the organism's corpus: from the cache, or built now (embedding shows a progress bar)."""
        with record_call("corpus_index.open", {"organism_dir": str(organism_dir)}, callback) as call:
            organism_dir = Path(organism_dir)
            card = read_card(organism_dir)
            organism_id, corpus_sha = card.organism_id, card.corpus.sha256
            corpus_path = organism_dir / CORPUS_FILE
            if not corpus_path.is_file():
                raise FileNotFoundError(f"{corpus_path}: file not found (the organism has no corpus)")
            file_sha = sha256_file(corpus_path)
            target = index_path(organism_id, corpus_sha, file_sha)
            family = index_family(organism_id, file_sha)
            built = False
            if not target.exists():
                with file_lock(target.parent / f".{family}.lock"):  # one process builds, the others wait
                    if not target.exists():
                        _remove_stale(target, family, indexes=False)  # abandoned temporary builds
                        _build(target, corpus_path, organism_id, corpus_sha, file_sha, progress)
                        _remove_stale(target, family)  # older index versions, once the new one is in place
                        built = True
            index = cls(target, built, callback)
            call.summary = (f"{'built' if built else 'opened cached'} index of {organism_id}: {index.n_docs} "
                            f"documents ({target.name})")
            return index

    # -- plumbing -----------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the read-only connection."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            if self._con is None:
                raise RuntimeError(f"{self.path}: the index is closed")
            cursor = self._local.cursor = self._con.cursor()
            self._cursors.append(cursor)
        return cursor

    @staticmethod
    def _check(query: str, kind: str | None, limit: int, offset: int) -> str:
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"query: expected a non-empty search string, got {query!r}")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind: expected one of {', '.join(KINDS)} or None, got {kind!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset: expected a non-negative integer, got {offset!r}")
        return query.strip()

    def _stem_all(self, tokens: set[str]) -> dict[str, str]:
        """Porter stems (DuckDB's own `stem`, as the full-text index uses), memoised."""
        with self._stem_lock:
            todo = [t for t in tokens if t not in self._stems]
        if todo:
            rows = self._cursor().execute("SELECT t, stem(t, 'porter') FROM unnest(?::VARCHAR[]) AS u(t)",
                                          [todo]).fetchall()
            with self._stem_lock:
                if len(self._stems) > 200_000:
                    self._stems.clear()
                self._stems.update(rows)
        with self._stem_lock:
            return {t: self._stems.get(t, t) for t in tokens}

    def _query_terms(self, query: str) -> dict[int, str]:
        """{termid: stem} of the query's words that occur in the corpus (exactly those BM25 scores)."""
        rows = self._cursor().execute(
            "SELECT d.termid, d.term FROM (SELECT DISTINCT stem(unnest(fts_main_corpus.tokenize(?)), 'porter') AS t) "
            "AS q JOIN fts_main_corpus.dict AS d ON d.term = q.t", [query]).fetchall()
        return {int(termid): term for termid, term in rows if term}

    def _texts(self, doc_ids: list[str]) -> dict[str, str]:
        """{doc_id: text} through the primary key."""
        if not doc_ids:
            return {}
        marks = ", ".join("?" for _ in doc_ids)
        return dict(self._cursor().execute(f"SELECT doc_id, text FROM corpus WHERE doc_id IN ({marks})",
                                           list(doc_ids)).fetchall())

    def _spans(self, text: str, terms: set[str]) -> list[tuple[int, int, str]]:
        """(start, end, term) of each word of `text` whose stem is one of `terms`."""
        if not terms:
            return []
        tokens = [(m.start(), m.end(), _normalise(m.group())) for m in _TOKEN.finditer(text)]
        stems = self._stem_all({t for _, _, t in tokens})
        return [(s, e, stems[t]) for s, e, t in tokens if stems[t] in terms]

    def _hits(self, rows: list[tuple], terms: set[str], include_text: bool) -> list[SearchHit]:
        """SearchHits for (doc_id, kind, score) rows, texts fetched for these rows only."""
        texts = self._texts([doc_id for doc_id, _, _ in rows])
        return [SearchHit(doc_id=doc_id, kind=kind, score=float(score),
                          snippet=_snippet(texts[doc_id], self._spans(texts[doc_id], terms)),
                          text=texts[doc_id] if include_text else None)
                for doc_id, kind, score in rows]

    # -- searching ----------------------------------------------------------------------------

    def keyword_search(self, query: str, kind: str | None = None, limit: int = 10, offset: int = 0,
                       include_text: bool = False) -> list[SearchHit]:
        """Documents ranked by BM25 for `query` (porter-stemmed words), best first; matches marked «» in snippets."""
        arguments = {"query": query, "kind": kind, "limit": limit, "offset": offset}
        with record_call("keyword_search", arguments, self.callback) as call:
            query = self._check(query, kind, limit, offset)
            terms = self._query_terms(query)
            rows = [] if not terms else self._cursor().execute(
                f"WITH s AS (SELECT docid, sum(weight) AS score FROM bm25_postings "
                f"           WHERE termid IN ({', '.join(str(t) for t in sorted(terms))}) GROUP BY docid) "
                f"SELECT m.doc_id, m.kind, s.score FROM s JOIN bm25_docs AS m USING (docid) "
                f"WHERE $kind IS NULL OR m.kind = $kind ORDER BY s.score DESC, m.doc_id LIMIT $limit OFFSET $offset",
                {"kind": kind, "limit": limit, "offset": offset}).fetchall()
            hits = self._hits(rows, set(terms.values()), include_text)
            call.summary = _summary(hits)
            return hits

    def semantic_search(self, query: str, kind: str | None = None, limit: int = 10, offset: int = 0,
                        include_text: bool = False) -> list[SearchHit]:
        """Documents nearest in meaning to `query` (cosine similarity of MiniLM embeddings, HNSW), best first."""
        arguments = {"query": query, "kind": kind, "limit": limit, "offset": offset}
        with record_call("semantic_search", arguments, self.callback) as call:
            query = self._check(query, kind, limit, offset)
            vector = embeddings.embed([query])[0].tolist()
            wanted = offset + limit
            want = wanted * (SEMANTIC_OVERSAMPLE if kind else 1)
            candidates = min(self.n_docs, -(-want // SEMANTIC_BUCKET) * SEMANTIC_BUCKET)
            rows = self._nearest(vector, kind, candidates, wanted, approximate=True)
            if len(rows) < wanted and (kind is not None or len(rows) < min(wanted, self.n_docs)):
                # too few after the kind filter (or from the approximate index): an exact, filtered scan
                rows = self._nearest(vector, kind, candidates, wanted, approximate=False)
            hits = self._hits(rows[offset:wanted], set(self._query_terms(query).values()), include_text)
            call.summary = _summary(hits)
            return hits

    def _nearest(self, vector: list[float], kind: str | None, candidates: int, wanted: int,
                 approximate: bool) -> list[tuple]:
        """(doc_id, kind, similarity) of the nearest documents: HNSW top-k then the kind filter, or an exact scan."""
        if approximate:
            rows = self._cursor().execute(hnsw_sql(candidates), {"vec": vector}).fetchall()
            rows = sorted((r for r in rows if kind is None or r[1] == kind), key=lambda r: (r[2], r[0]))
        else:
            rows = self._cursor().execute(f"SELECT doc_id, kind, {_DISTANCE} AS distance FROM embeddings "
                                          f"WHERE $kind IS NULL OR kind = $kind ORDER BY distance, doc_id "
                                          f"LIMIT {int(wanted)}", {"vec": vector, "kind": kind}).fetchall()
        return [(doc_id, doc_kind, 1.0 - float(dist)) for doc_id, doc_kind, dist in rows[:wanted]]

    def document(self, doc_id: str) -> CorpusDocument:
        """One corpus row by id (KeyError naming the id when absent)."""
        with record_call("get_document", {"doc_id": doc_id}, self.callback) as call:
            row = self._cursor().execute("SELECT doc_id, kind, text, messages, rejected, n_chars FROM corpus "
                                         "WHERE doc_id = ?", [doc_id]).fetchone()
            if row is None:
                raise KeyError(f"doc_id {doc_id!r}: no such document in the corpus of {self.organism_id}")
            document = CorpusDocument(**dict(zip(PUBLIC_COLUMNS, row, strict=True)))
            call.summary = f"{document.kind}, {document.n_chars} chars"
            return document

    def sql_sandbox(self, **settings: Any) -> SqlSandbox:
        """A read-only SQL sandbox over this index (see `sql_sandbox.SqlSandbox` for the settings)."""
        settings.setdefault("callback", self.callback)
        return SqlSandbox(self.path, **settings)

    def close(self) -> None:
        """Close the connection and every thread's cursor."""
        for cursor in self._cursors:
            with contextlib.suppress(Exception):
                cursor.close()
        self._cursors.clear()
        self._local = threading.local()
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> CorpusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DISTANCE = f"array_cosine_distance(vec, $vec::FLOAT[{embeddings.DIM}])"


def hnsw_sql(candidates: int) -> str:
    """The nearest-neighbour query the HNSW index serves: `ORDER BY distance LIMIT <constant>`, no filter."""
    return (f"SELECT doc_id, kind, {_DISTANCE} AS distance FROM embeddings "
            f"ORDER BY {_DISTANCE} LIMIT {int(candidates)}")


def _summary(hits: list[SearchHit]) -> str:
    if not hits:
        return "0 hits"
    return f"{len(hits)} hits: " + ", ".join(f"{h.doc_id} ({h.score:.3g})" for h in hits[:5]) + \
        (", …" if len(hits) > 5 else "")
