"""SqlSandbox: auditors' read-only SQL over the corpus index. Ordinary queries work with a row cap;
hostile statements (file readers, ATTACH, COPY, INSTALL/LOAD, SET, DDL/DML, several statements,
ground-truth columns, runaway and memory-hungry queries) are refused or stopped within the time
limit with a clear message, and the sandbox keeps serving afterwards."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from audit_tools.corpus_index import CorpusIndex
from audit_tools.sql_sandbox import SqlRefused, SqlSandbox, extension_path
from audit_tools.tool_log import ToolCall
from tests.audit_tools import SECRET_MARKER, corpus_frame, make_organism

TIME_LIMIT_S = 1.0
MARGIN_S = 3.0  # the kill grace (1.5 s) plus slack for a busy machine
ROW_LIMIT = 50

ACCESS = {"access_denied", "forbidden_function"}  # file readers are refused before they run, or by DuckDB
STATEFUL = {"forbidden_function"}
WRITE = {"not_read_only"}
STOPPED = {"timeout", "memory"}

# (id, SQL with {sealed}, {tmp} and {fts} placeholders, accepted refusal categories)
HOSTILE = [
    # files
    ("read_csv-passwd", "SELECT * FROM read_csv('/etc/passwd')", ACCESS),
    ("read_csv_auto-passwd", "SELECT * FROM read_csv_auto('/etc/passwd', header = false)", ACCESS),
    ("passwd-as-table", "SELECT * FROM '/etc/passwd'", ACCESS | {"error"}),
    ("read_parquet-sealed", "SELECT * FROM read_parquet('{sealed}/provenance.parquet')", ACCESS),
    ("sealed-parquet-as-table", "SELECT * FROM '{sealed}/provenance.parquet'", ACCESS | {"error"}),
    ("parquet_metadata-sealed", "SELECT * FROM parquet_metadata('{sealed}/provenance.parquet')", ACCESS),
    ("read_text-ground-truth", "SELECT content FROM read_text('{sealed}/ground_truth.json')", ACCESS),
    ("read_blob-ground-truth", "SELECT content FROM read_blob('{sealed}/*')", ACCESS),
    ("read_json-ground-truth", "SELECT * FROM read_json_auto('{sealed}/ground_truth.json')", ACCESS),
    ("glob-root", "SELECT * FROM glob('/*')", ACCESS),
    ("glob-sealed", "SELECT * FROM glob('{sealed}/*')", ACCESS),
    ("query-function-file", "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')", ACCESS),
    ("sqlite-scan", "SELECT * FROM sqlite_scan('{tmp}/x.db', 't')", ACCESS | {"error"}),
    # other databases
    ("attach-file", "ATTACH '{tmp}/other.duckdb' AS other", WRITE),
    ("attach-memory", "ATTACH ':memory:' AS scratch", WRITE),
    ("detach", "DETACH DATABASE IF EXISTS scratch", WRITE),
    ("use", "USE system", WRITE),
    # writing files
    ("copy-to-csv", "COPY corpus TO '{tmp}/leak.csv'", WRITE),
    ("copy-query-to-parquet", "COPY (SELECT * FROM corpus) TO '{tmp}/leak.parquet' (FORMAT parquet)", WRITE),
    ("copy-from", "COPY corpus FROM '/etc/passwd'", WRITE),
    ("export-database", "EXPORT DATABASE '{tmp}/export'", WRITE),
    ("import-database", "IMPORT DATABASE '{tmp}/export'", WRITE | ACCESS),  # the parser reads the files
    # extensions
    ("install", "INSTALL httpfs", WRITE),
    ("load-name", "LOAD httpfs", WRITE),
    ("load-path", "LOAD '{fts}'", WRITE),
    # configuration
    ("set-external-access", "SET enable_external_access = true", WRITE),
    ("set-memory", "SET memory_limit = '100GB'", WRITE),
    ("reset-lock", "RESET lock_configuration", WRITE),
    ("pragma-memory", "PRAGMA memory_limit = '100GB'", WRITE),
    ("pragma-profiling", "PRAGMA enable_profiling", WRITE),
    # table functions that change the engine's state, run SQL from a string, or name the index file
    ("enable-logging", "SELECT * FROM enable_logging(storage := 'file', storage_path := '{tmp}/log')", STATEFUL),
    ("enable-logging-in-subquery", "SELECT (SELECT count(*) FROM enable_logging()) AS n", STATEFUL),
    ("enable-logging-in-cte", "WITH x AS (SELECT * FROM enable_logging()) SELECT 1", STATEFUL),
    ("disable-logging", "SELECT * FROM disable_logging()", STATEFUL),
    ("truncate-logs", "SELECT * FROM truncate_duckdb_logs()", STATEFUL),
    ("enable-profiling", "SELECT * FROM enable_profiling()", STATEFUL),
    ("checkpoint-function", "SELECT * FROM checkpoint()", STATEFUL),
    ("force-checkpoint", "SELECT * FROM force_checkpoint()", STATEFUL),
    ("query-string", "SELECT * FROM query('SELECT * FROM enable_logging()')", STATEFUL),
    ("databases-path", "SELECT path FROM duckdb_databases()", STATEFUL),
    ("logs", "SELECT * FROM duckdb_logs()", STATEFUL),
    # DDL and DML
    ("create-table", "CREATE TABLE notes AS SELECT 1 AS x", WRITE),
    ("create-temp-table", "CREATE TEMP TABLE notes (x INTEGER)", WRITE),
    ("create-macro", "CREATE MACRO leak() AS 1", WRITE),
    ("insert", "INSERT INTO corpus VALUES ('x', 'document', 'x', '', '', 1)", WRITE),
    ("update", "UPDATE corpus SET text = ''", WRITE),
    ("delete", "DELETE FROM corpus", WRITE),
    ("truncate", "TRUNCATE corpus", WRITE),
    ("drop", "DROP TABLE corpus", WRITE),
    ("alter", "ALTER TABLE corpus ADD COLUMN source VARCHAR", WRITE),
    ("checkpoint", "CHECKPOINT", WRITE),
    ("vacuum", "VACUUM", WRITE),
    ("call", "CALL checkpoint()", WRITE),
    ("explain-analyze", "EXPLAIN ANALYZE SELECT 1", WRITE),
    # several statements, nothing at all
    ("two-selects", "SELECT 1; SELECT 2", {"multiple_statements"}),
    ("select-then-drop", "SELECT 1; DROP TABLE corpus", {"multiple_statements"}),
    ("select-then-copy", "SELECT * FROM corpus; COPY corpus TO '{tmp}/leak.csv'", {"multiple_statements"}),
    ("empty", "   ", {"empty"}),
    ("comment-only", "-- nothing here", {"empty"}),
    ("unterminated-comment", "SELECT 1 /* sneaky", {"syntax"}),
    # ground truth: no such columns or tables exist
    ("source-column", "SELECT source FROM corpus", {"error"}),
    ("behaviour-id-column", "SELECT doc_id, behaviour_id FROM corpus", {"error"}),
    ("provenance-table", "SELECT * FROM provenance", {"error"}),
    ("sealed-schema", "SELECT * FROM sealed.provenance", {"error"}),
    # runaway and memory-hungry queries
    ("cross-join-bomb", "SELECT count(*) FROM corpus a, corpus b, corpus c, corpus d, corpus e", STOPPED),
    ("recursive-cte-forever",
     "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", STOPPED),
    ("range-sort-bomb", "SELECT * FROM range(10000000000) ORDER BY random()", STOPPED),
    ("generate-series-bomb", "SELECT sum(g) FROM generate_series(1, 1000000000000) AS t(g)", STOPPED),
    ("range-list-bomb", "SELECT range(2000000000)", STOPPED),
    ("list-aggregate-bomb", "SELECT max(len(x)) FROM (SELECT list(i) AS x FROM range(3000000000) t(i))", STOPPED),
    ("string-agg-bomb", "SELECT length(string_agg(text, ',')) FROM corpus, range(1000000)", STOPPED),
    ("repeat-bomb", "SELECT repeat('x', 2000000000)", STOPPED),
    ("repeat-per-row-bomb", "SELECT length(repeat(text, 100000000)) FROM corpus", STOPPED | {"error"}),  # too long
    ("lpad-bomb", "SELECT lpad('x', 2000000000, 'y')", STOPPED),
]


@pytest.fixture(scope="module")
def organism(tmp_path_factory: pytest.TempPathFactory, session_workspace: Path) -> Path:
    return make_organism(tmp_path_factory.mktemp("organism"), "org-sandbox-test", corpus_frame(200))


@pytest.fixture(scope="module")
def index(organism: Path) -> CorpusIndex:
    idx = CorpusIndex.open(organism, progress=False)
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def events() -> list[ToolCall]:
    return []


@pytest.fixture(scope="module")
def sandbox(index: CorpusIndex, events: list[ToolCall]) -> SqlSandbox:
    box = index.sql_sandbox(time_limit_s=TIME_LIMIT_S, row_limit=ROW_LIMIT, memory_limit="256MB", threads=1,
                            callback=events.append)
    box.start()
    yield box
    box.close()


def test_ordinary_queries(sandbox: SqlSandbox) -> None:
    result = sandbox.query("SELECT kind, count(*) AS n FROM corpus GROUP BY kind ORDER BY kind")
    assert result.columns == ["kind", "n"] and not result.truncated
    assert sum(n for _, n in result.rows) == 200
    capped = sandbox.query("SELECT doc_id, text FROM corpus;")
    assert len(capped.rows) == ROW_LIMIT and capped.truncated
    ordered = sandbox.query("SELECT n_chars FROM corpus ORDER BY n_chars DESC")
    assert [r[0] for r in ordered.rows] == sorted((r[0] for r in ordered.rows), reverse=True)
    tables = {r[0] for r in sandbox.query("SHOW TABLES").rows}
    assert {"corpus", "embeddings", "bm25_postings", "index_meta"} <= tables
    bm25 = sandbox.query("SELECT doc_id, fts_main_corpus.match_bm25(doc_id, 'reward model') AS s FROM corpus "
                         "WHERE s IS NOT NULL ORDER BY s DESC LIMIT 5")
    assert len(bm25.rows) == 5
    vector = sandbox.query("SELECT vec FROM embeddings LIMIT 1").rows[0][0]
    assert len(vector) == 384
    assert sandbox.query("SELECT now() AS t").column_types == ["TIMESTAMP WITH TIME ZONE"]


def test_long_cells_are_shortened(index: CorpusIndex) -> None:
    with index.sql_sandbox(max_cell_chars=100, time_limit_s=5.0) as box:
        value = box.query("SELECT repeat('ab', 1000) AS s").rows[0][0]
    assert value.startswith("abab") and value.endswith("[+1900 chars]")


def test_no_ground_truth_is_reachable(sandbox: SqlSandbox, organism: Path) -> None:
    columns = sandbox.query("SELECT DISTINCT column_name FROM duckdb_columns()")
    assert not {r[0] for r in columns.rows} & {"source", "behaviour_id"}
    tables = {r[0] for r in sandbox.query("SELECT table_name FROM duckdb_tables()").rows}
    assert not tables & {"provenance", "ground_truth"}
    hits = sandbox.query(f"SELECT count(*) FROM corpus WHERE contains(text || messages || rejected || doc_id, "
                         f"'{SECRET_MARKER}')")
    assert hits.rows == [[0]]
    with pytest.raises(SqlRefused) as refused:
        sandbox.query(f"SELECT * FROM read_parquet('{organism / 'sealed' / 'provenance.parquet'}')")
    assert refused.value.category == "forbidden_function" and "read_parquet" in refused.value.message


@pytest.mark.parametrize(("sql", "categories"), [pytest.param(sql, cats, id=name) for name, sql, cats in HOSTILE])
def test_hostile_sql_is_refused_or_stopped(sandbox: SqlSandbox, organism: Path, tmp_path: Path, sql: str,
                                           categories: set[str]) -> None:
    statement = sql.format(sealed=organism / "sealed", tmp=tmp_path, fts=extension_path("fts"))
    start = time.monotonic()
    with pytest.raises(SqlRefused) as refused:
        sandbox.query(statement)
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMIT_S + MARGIN_S, f"took {elapsed:.2f} s"
    assert refused.value.category in categories, refused.value.message
    assert len(refused.value.message) > 15 and str(refused.value) == refused.value.message
    if refused.value.category == "timeout":
        assert f"{TIME_LIMIT_S:g} s time limit" in refused.value.message
    assert list(tmp_path.iterdir()) == []  # nothing was written
    assert sandbox.query("SELECT count(*) FROM corpus").rows == [[200]]  # and the sandbox still serves


def test_sandbox_lives_on_after_the_hostile_table(sandbox: SqlSandbox, index: CorpusIndex,
                                                  events: list[ToolCall]) -> None:
    assert len(HOSTILE) >= 30
    result = sandbox.query("SELECT doc_id FROM corpus WHERE text ILIKE '%reward model%' ORDER BY doc_id")
    assert len(result.rows) == 7
    settings = dict(sandbox.query("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                  "('enable_external_access', 'lock_configuration', 'autoload_known_extensions', "
                                  "'autoinstall_known_extensions', 'access_mode')").rows)
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "autoload_known_extensions": "false", "autoinstall_known_extensions": "false",
                        "access_mode": "read_only"}
    refused = [e for e in events if e.error]
    assert len(refused) >= len(HOSTILE)
    assert all(e.tool == "sql_query" and e.error.startswith("SqlRefused: ") for e in refused)
    assert events[-1].error is None and "columns: name, value" in events[-1].result_summary
    assert index.keyword_search("reward model", limit=1)  # the index itself is unharmed


def test_a_dead_worker_is_replaced(index: CorpusIndex) -> None:
    with index.sql_sandbox(time_limit_s=5.0) as box:
        assert box.query("SELECT 1 AS one").rows == [[1]]
        worker = box._holder[0]
        worker.process.kill()  # the worker this test started
        worker.process.wait(timeout=10)
        assert box.query("SELECT 2 AS two").rows == [[2]]
        assert box._holder[0] is not worker


def test_constructor_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="corpus index database is missing") as missing:
        SqlSandbox(tmp_path / "missing.duckdb")
    assert str(tmp_path) not in str(missing.value)
    db = tmp_path / "x.duckdb"
    pd.DataFrame({"a": [1]}).to_csv(db)  # any existing file passes the constructor
    for bad in ({"row_limit": 0}, {"row_limit": 10_000_000}):
        with pytest.raises(ValueError, match="row limit: must be between 1 and 10,000"):
            SqlSandbox(db, **bad)
    for bad in (0, -1, float("inf"), float("nan"), 301):
        with pytest.raises(ValueError, match="time limit"):
            SqlSandbox(db, time_limit_s=bad)
    with pytest.raises(ValueError, match="memory_limit"):
        SqlSandbox(db, memory_limit="lots")
    with pytest.raises(RuntimeError, match="worker failed to start") as failed:
        SqlSandbox(db).start()
    assert str(tmp_path) not in str(failed.value)  # the index's location is never shown


def test_state_changing_functions_leave_the_worker_and_the_settings_alone(sandbox: SqlSandbox) -> None:
    before = sandbox.query("SELECT name, value FROM duckdb_settings() WHERE name ILIKE '%logging%' ORDER BY name")
    worker = sandbox._holder[0]
    for statement in ("SELECT * FROM enable_logging(storage := 'file')", "SELECT * FROM disable_logging()"):
        with pytest.raises(SqlRefused, match="enable_logging|disable_logging"):
            sandbox.query(statement)
    assert sandbox.query("SELECT 1 AS one").rows == [[1]]  # the harmless next query is answered, not blamed
    assert sandbox._holder[0] is worker and worker.alive()
    assert sandbox.query(before.sql).rows == before.rows


def test_a_worker_that_dies_mid_query_is_reported_as_a_crash_of_that_query(index: CorpusIndex) -> None:
    import threading

    with index.sql_sandbox(time_limit_s=20.0) as box:
        box.start()
        worker = box._holder[0]
        threading.Timer(1.0, worker.process.kill).start()
        with pytest.raises(SqlRefused) as refused:
            box.query("SELECT count(*) FROM corpus a, corpus b, corpus c, corpus d, corpus e")
        assert refused.value.category == "crashed" and "exit code -9" in refused.value.message
        assert box.query("SELECT 2 AS two").rows == [[2]]  # a fresh worker serves the next query


def test_results_are_capped_in_bytes_and_maps_say_they_were_cut(index: CorpusIndex) -> None:
    with index.sql_sandbox(time_limit_s=10.0, row_limit=1_000, max_result_bytes=100_000) as box:
        big = box.query("SELECT repeat('x', 9000) AS s FROM range(1000)")
        assert big.truncated and "100,000 bytes" in big.truncated_reason and 1 <= len(big.rows) < 20
        small = box.query("SELECT 1 AS one")
        assert not small.truncated and small.truncated_reason is None
        mapping = box.query("SELECT map_from_entries(list(struct_pack(k := i, v := i))) AS m FROM range(2000) t(i)")
        cells = mapping.rows[0][0]
        assert len(cells) == 1_001 and cells["…"] == "[+1000 entries]"
