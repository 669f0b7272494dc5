"""Read-only SQL for auditors over an organism's corpus index, in a locked-down worker process.

Auditors may run their own SQL over the public corpus tables of a `CorpusIndex` database
(`corpus`, `embeddings`, the full-text index's `fts_main_corpus.*` tables and macro). The index
file holds the public corpus only: nothing from the organism's `sealed/` directory ever enters it.
Untrusted SQL is run with several layers around it:

- a separate worker process (`python -m audit_tools.sql_sandbox --worker`), so that no query can
  crash, stall or exhaust the memory of the caller: the worker's address space is capped with
  `RLIMIT_AS` (allocation failures become ordinary errors), and a query that overruns the time
  limit is interrupted and, if it does not stop, the worker is killed and restarted;
- in the worker, the database file opened `read_only`, extensions loaded from the installed
  PyPI wheels first, then external access (files, other databases, network) turned off,
  extension autoload/autoinstall off, `memory_limit`, `threads`, no spill directory, and the
  configuration locked (`SET`, `RESET`, `PRAGMA` and friends are refused);
- a single statement per query, and only read queries (`SELECT`, `WITH`, `FROM`, `VALUES`,
  `DESCRIBE`, `SHOW`, `SUMMARIZE`); `ATTACH`, `COPY`, `EXPORT`, `INSTALL`, `LOAD`, DDL and DML
  never reach the engine;
- the query's syntax tree (DuckDB's `json_serialize_sql`) may name only allow-listed table functions
  (`range`, `unnest`, catalogue views such as `duckdb_tables`, the corpus index's own macros):
  functions that change state (`enable_logging`, `checkpoint`, ...), run SQL held in a string
  (`query`) or read files are refused before they run;
- at most `row_limit` rows and `max_result_bytes` of JSON come back (plus a `truncated` flag and
  the reason); long cells, lists and maps are shortened and say by how much;
- error messages never show the index file's location.

Every refusal raises `SqlRefused` with a readable message and a category; the caller lives on. A
worker that dies is reported as a crash, to the query that killed it, and the next query gets a
fresh worker.
This module also holds the DuckDB extension loader shared with `corpus_index` (it is imported by
the worker, so it stays light: duckdb and pydantic only).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel

from audit_tools.tool_log import ToolCallback, record_call

EXTENSIONS = ("fts", "vss")
DEFAULT_ROW_LIMIT = 200
DEFAULT_TIME_LIMIT_S = 10.0
DEFAULT_MEMORY_LIMIT = "1GB"
DEFAULT_THREADS = 2
DEFAULT_MAX_CELL_CHARS = 10_000
DEFAULT_MAX_RESULT_BYTES = 2_000_000
MAX_ROW_LIMIT = 10_000
MAX_TIME_LIMIT_S = 300.0
MAX_LIST_ITEMS = 1_000
MAX_SQL_CHARS = 100_000
INDEX_PLACEHOLDER = "<corpus index>"
# Table functions a query may name: generators, catalogue views and the corpus index's own macros. Anything
# else (state changes such as enable_logging or checkpoint, query() running SQL from a string, file readers,
# duckdb_databases() naming the index file) is refused before it runs.
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree", "summary",
    "duckdb_columns", "duckdb_constraints", "duckdb_functions", "duckdb_indexes", "duckdb_keywords",
    "duckdb_schemas", "duckdb_tables", "duckdb_types", "duckdb_views", "pragma_table_info", "pragma_show",
    "pragma_version", "duckdb_settings", "test_all_types", "vss_join", "vss_match", "match_bm25", "stem",
})
KILL_GRACE_S = 1.5  # after the time limit, how long an interrupted query may take to stop before the worker is killed
WORKER_START_TIMEOUT_S = 120.0
ALLOWED_STATEMENT = duckdb.StatementType.SELECT


# ---------------------------------------------------------------------------------------------
# DuckDB extensions from the installed wheels (no download)


def extension_path(name: str) -> Path:
    """The `.duckdb_extension` binary shipped by the PyPI package `duckdb-extension-<name>`."""
    package = f"duckdb_extension_{name}"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise RuntimeError(f"DuckDB extension {name!r}: the package duckdb-extension-{name}=={duckdb.__version__} "
                           f"is not installed (pip install duckdb-extension-{name}=={duckdb.__version__})") from None
    root = Path(module.__file__).resolve().parent / "extensions"
    path = root / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        found = sorted(str(p.relative_to(root)) for p in root.glob("*/*.duckdb_extension")) if root.is_dir() else []
        raise RuntimeError(f"DuckDB extension {name!r}: no binary for duckdb {duckdb.__version__} at {path} "
                           f"(the package has: {', '.join(found) or 'nothing'}); install duckdb-extension-{name}"
                           f"=={duckdb.__version__}")
    return path


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def load_extensions(con: duckdb.DuckDBPyConnection, names: tuple[str, ...] = EXTENSIONS) -> None:
    """Load DuckDB extensions from the installed wheels into `con` (must happen before locking)."""
    for name in names:
        con.execute(f"LOAD {_sql_literal(str(extension_path(name)))}")


def base_config(**extra: Any) -> dict[str, Any]:
    """Connection settings every Pinhole DuckDB connection uses: never fetch or autoload extensions."""
    return {"autoload_known_extensions": False, "autoinstall_known_extensions": False,
            "allow_community_extensions": False, **extra}


# ---------------------------------------------------------------------------------------------
# Records


class SqlResult(BaseModel):
    """The answer to an auditor's query: at most `row_limit` rows and `max_result_bytes`, JSON-safe values."""

    sql: str
    columns: list[str]
    column_types: list[str]
    rows: list[list[Any]]
    truncated: bool
    truncated_reason: str | None = None  # why rows were left out: the row limit or the byte cap
    elapsed_s: float


class SqlRefused(Exception):
    """A query the sandbox did not run or stopped; `message` says why, `category` classifies it.

    Categories: empty, too_long, syntax, multiple_statements, not_read_only, forbidden_function,
    access_denied, timeout, memory, error, crashed.
    """

    def __init__(self, message: str, category: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.category = category


# ---------------------------------------------------------------------------------------------
# The worker process


def _refusal(category: str, message: str) -> dict[str, Any]:
    return {"ok": False, "category": category, "message": message}


def _jsonable(value: Any, max_chars: int) -> Any:
    """A JSON-safe, size-capped copy of a DuckDB value."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[:max_chars] + f"…[+{len(value) - max_chars} chars]"
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        shown = data[: max_chars // 4].hex()
        return f"<{len(data)} bytes: {shown}{'…' if len(data) > max_chars // 4 else ''}>"
    if isinstance(value, list | tuple):
        items = [_jsonable(v, max_chars) for v in value[:MAX_LIST_ITEMS]]
        if len(value) > MAX_LIST_ITEMS:
            items.append(f"…[+{len(value) - MAX_LIST_ITEMS} items]")
        return items
    if isinstance(value, dict):
        items = {str(k): _jsonable(v, max_chars) for k, v in list(value.items())[:MAX_LIST_ITEMS]}
        if len(value) > MAX_LIST_ITEMS:
            items["…"] = f"[+{len(value) - MAX_LIST_ITEMS} entries]"
        return items
    return _jsonable(str(value), max_chars)


def _table_functions(con: duckdb.DuckDBPyConnection, sql: str) -> set[str] | None:
    """The table functions a SELECT names anywhere in its syntax tree (None: DuckDB cannot serialize it)."""
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()[0])
    except Exception:
        return None
    if tree.get("error"):
        return None
    found: set[str] = set()
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
                found.add(str(node["function"].get("function_name", "")).lower())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


_redactions: list[str] = []  # the index's path and folders, hidden from every message the worker sends


def _error_text(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    for secret in _redactions:
        text = text.replace(secret, INDEX_PLACEHOLDER)
    return text


def _classify(err: BaseException, timed_out: bool, time_limit_s: float, memory_limit: str) -> dict[str, Any]:
    text = _error_text(err)
    if timed_out or isinstance(err, duckdb.InterruptException):
        return _refusal("timeout", f"query stopped: it ran longer than the {time_limit_s:g} s time limit")
    if isinstance(err, duckdb.OutOfMemoryException | MemoryError):
        return _refusal("memory", f"query stopped: it needed more memory than the sandbox allows "
                                  f"({memory_limit}): {text}")
    if isinstance(err, duckdb.PermissionException):
        return _refusal("access_denied", f"refused: the sandbox reaches no files, databases or network, "
                                         f"only the corpus tables: {text}")
    if isinstance(err, duckdb.ParserException):
        return _refusal("syntax", f"query failed: {text}")
    return _refusal("error", f"query failed: {text}")


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run_query(con: duckdb.DuckDBPyConnection, sql: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Check and run one untrusted query on the locked connection; always returns a response."""
    row_limit, time_limit_s = settings["row_limit"], settings["time_limit_s"]
    try:
        statements = con.extract_statements(sql)
    except Exception as err:
        if isinstance(err, duckdb.PermissionException):  # IMPORT DATABASE reads its files while parsing
            return _classify(err, False, time_limit_s, settings["memory_limit"])
        return _refusal("syntax", f"could not parse the query: {_error_text(err)}")
    if not statements:
        return _refusal("empty", "refused: the query holds no SQL statement")
    if len(statements) > 1:
        return _refusal("multiple_statements",
                        f"refused: one statement per query, this holds {len(statements)} "
                        f"({', '.join(s.type.name for s in statements)})")
    statement = statements[0]
    if statement.type != ALLOWED_STATEMENT:
        return _refusal("not_read_only",
                        f"refused: only read queries (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE) are "
                        f"allowed; this statement is of type {statement.type.name}")
    query = statement.query
    functions = _table_functions(con, query)
    if functions is None:
        return _refusal("forbidden_function", "refused: the sandbox could not check this query's functions; "
                                              "write it as a plain SELECT (PIVOT and similar forms are not checked)")
    forbidden = sorted(functions - ALLOWED_TABLE_FUNCTIONS)
    if forbidden:
        return _refusal("forbidden_function",
                        f"refused: table function(s) {', '.join(forbidden)} are not available in the sandbox "
                        f"(allowed: {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})")
    wrapped = f"SELECT * FROM (\n{query}\n) AS _sandboxed LIMIT {row_limit + 1}"
    with contextlib.suppress(Exception):  # the row cap is pushed into the plan when the query nests
        checked = con.extract_statements(wrapped)
        if len(checked) == 1 and checked[0].type == ALLOWED_STATEMENT:
            query = wrapped
    cursor = con.cursor()
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        cursor.interrupt()

    timer = threading.Timer(time_limit_s, stop)
    timer.daemon = True
    timer.start()
    try:
        relation = cursor.sql(query)  # binds only; rows are produced by fetchmany, under the timer
        columns, column_types = list(relation.columns), [str(t) for t in relation.types]
        if any("TIME ZONE" in t for t in column_types):  # Python conversion of these needs pytz: send text
            relation = relation.project(", ".join(
                f"CAST({_identifier(c)} AS VARCHAR)" if "TIME ZONE" in t else _identifier(c)
                for c, t in zip(columns, column_types, strict=True)))
        rows = relation.fetchmany(row_limit + 1)
    except BaseException as err:
        return _classify(err, timed_out.is_set(), time_limit_s, settings["memory_limit"])
    finally:
        timer.cancel()
        with contextlib.suppress(Exception):
            cursor.close()
    if timed_out.is_set():
        return _classify(duckdb.InterruptException("interrupted"), True, time_limit_s, settings["memory_limit"])
    max_chars, max_bytes = settings["max_cell_chars"], settings["max_result_bytes"]
    kept: list[list[Any]] = []
    size = 0
    reason = f"more than {row_limit} rows" if len(rows) > row_limit else None
    for row in rows[:row_limit]:
        cells = [_jsonable(v, max_chars) for v in row]
        size += len(json.dumps(cells, ensure_ascii=False, default=str).encode("utf-8"))
        if size > max_bytes:
            reason = f"the result passed {max_bytes:,} bytes after {len(kept)} rows"
            break
        kept.append(cells)
    return {"ok": True, "columns": columns, "column_types": column_types, "truncated": reason is not None,
            "truncated_reason": reason, "rows": kept}


def open_locked(db_path: Path, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """Open `db_path` read-only with extensions loaded, external access off and the configuration locked."""
    con = duckdb.connect(str(db_path), read_only=True,
                         config=base_config(memory_limit=memory_limit, threads=threads, temp_directory=""))
    load_extensions(con)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _vm_size_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _cap_address_space(budget_bytes: int) -> None:
    """Cap the worker's address space at what it uses now plus `budget_bytes` (Linux; best effort)."""
    try:
        import resource
        current = _vm_size_bytes()
        if not current:
            return
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = current + budget_bytes
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(resource.RLIMIT_AS, (want, hard))
    except (ImportError, OSError, ValueError):
        pass


def _memory_bytes(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
             "TIB": 2**40, "B": 1}
    cleaned = text.strip().upper().replace(" ", "")
    for unit in sorted(units, key=len, reverse=True):
        if cleaned.endswith(unit):
            return int(float(cleaned[: -len(unit)]) * units[unit])
    return int(float(cleaned))


def worker_main(settings_json: str) -> int:
    """The worker loop: one JSON request per stdin line, one JSON response per line on the protocol pipe."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the protocol

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message, ensure_ascii=False, default=str) + "\n")
        protocol.flush()

    try:
        settings = json.loads(settings_json)
        index = Path(settings["db_path"]).resolve()
        _redactions.extend(sorted({str(index), str(index.parent), str(index.parent.parent)}, key=len, reverse=True))
        con = open_locked(Path(settings["db_path"]), settings["memory_limit"], settings["threads"])
        con.execute("SELECT 1").fetchall()  # touch the engine before the address space is capped
        _cap_address_space(3 * _memory_bytes(settings["memory_limit"]) + 2**30)
    except Exception as err:
        send({"ready": False, "message": _error_text(err)})
        return 1
    send({"ready": True})
    for line in sys.stdin:  # the caller closing the pipe (or dying) ends the loop and the worker
        try:
            sql = json.loads(line)["sql"]
            response = _run_query(con, sql, settings)
        except Exception as err:
            response = _refusal("error", f"query failed: {_error_text(err)}")
        send(response)
    return 0


# ---------------------------------------------------------------------------------------------
# The caller's side


class WorkerDied(Exception):
    """The worker's pipe closed: it exited or was killed (exit code if known)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"exit code {code}")
        self.code = code


class _Worker:
    """One running worker process and its line-oriented JSON pipe."""

    def __init__(self, settings: dict[str, Any]) -> None:
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audit_tools.sql_sandbox", "--worker", json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True)
        self._buffer = b""
        try:
            ready = self.read(time.monotonic() + WORKER_START_TIMEOUT_S)
        except WorkerDied as err:
            ready = {"ready": False, "message": f"it exited ({err})"}
        if ready is None or not ready.get("ready"):
            self.kill()
            reason = ready.get("message") if ready else "it did not start in time"
            raise RuntimeError(f"SQL sandbox: the worker failed to start: {reason}")

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
        self.process.stdin.flush()

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next response; None if the deadline passes first. Raises `WorkerDied` if the worker's pipe closes."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerDied(self.exit_code())
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise OSError(f"the SQL sandbox worker sent an unreadable answer: {line[:200]!r}") from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_code(self, wait_s: float = 2.0) -> int | None:
        """The worker's exit code, waiting a little for a dying worker to be reaped (None if it lives on)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=wait_s)
        return None

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(Exception):
                stream.close()


def _stop_worker(holder: list[_Worker | None]) -> None:
    if holder[0] is not None:
        holder[0].kill()
        holder[0] = None


class SqlSandbox:
    """Untrusted, read-only SQL over a corpus index database (see the module docstring)."""

    def __init__(self, db_path: Path, *, row_limit: int = DEFAULT_ROW_LIMIT,
                 time_limit_s: float = DEFAULT_TIME_LIMIT_S, memory_limit: str = DEFAULT_MEMORY_LIMIT,
                 threads: int = DEFAULT_THREADS, max_cell_chars: int = DEFAULT_MAX_CELL_CHARS,
                 max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES, callback: ToolCallback | None = None) -> None:
        db_path = Path(db_path)
        if not db_path.is_file():
            raise FileNotFoundError("the corpus index database is missing (it is rebuilt when the organism is "
                                    "opened again)")
        if not 1 <= row_limit <= MAX_ROW_LIMIT:
            raise ValueError(f"row limit: must be between 1 and {MAX_ROW_LIMIT:,}, got {row_limit}")
        if not (isinstance(time_limit_s, int | float) and 0 < time_limit_s <= MAX_TIME_LIMIT_S):
            raise ValueError(f"time limit: must be more than 0 and at most {MAX_TIME_LIMIT_S:g} seconds, "
                             f"got {time_limit_s}")
        if not 1_000 <= max_result_bytes <= 100_000_000:
            raise ValueError(f"max_result_bytes: must be between 1,000 and 100,000,000, got {max_result_bytes}")
        if threads < 1:
            raise ValueError(f"threads: must be at least 1, got {threads}")
        try:
            _memory_bytes(memory_limit)
        except ValueError:
            raise ValueError(f"memory_limit: not a size like '1GB', got {memory_limit!r}") from None
        self.db_path = db_path
        self.row_limit = row_limit
        self.time_limit_s = float(time_limit_s)
        self.memory_limit = memory_limit
        self.callback = callback
        self._settings = {"db_path": str(db_path), "row_limit": row_limit, "time_limit_s": self.time_limit_s,
                          "memory_limit": memory_limit, "threads": threads, "max_cell_chars": max_cell_chars,
                          "max_result_bytes": max_result_bytes}
        self._lock = threading.Lock()
        self._holder: list[_Worker | None] = [None]
        self._finalizer = weakref.finalize(self, _stop_worker, self._holder)

    def start(self) -> SqlSandbox:
        """Start the worker now (otherwise the first query starts it)."""
        with self._lock:
            self._worker()
        return self

    def _worker(self) -> _Worker:
        if self._holder[0] is None or not self._holder[0].alive():
            _stop_worker(self._holder)
            self._holder[0] = _Worker(self._settings)
        return self._holder[0]

    def query(self, sql: str) -> SqlResult:
        """Run one read-only query; at most `row_limit` rows. Raises `SqlRefused` when refused or stopped."""
        with record_call("sql_query", {"sql": sql if isinstance(sql, str) else repr(sql)}, self.callback) as call:
            result = self._query(sql)
            call.summary = (f"{len(result.rows)} rows{' (truncated)' if result.truncated else ''}, "
                            f"columns: {', '.join(result.columns)}")
            return result

    def _query(self, sql: str) -> SqlResult:
        if not isinstance(sql, str) or not sql.strip():
            raise SqlRefused("refused: the query is empty", "empty")
        if len(sql) > MAX_SQL_CHARS:
            raise SqlRefused(f"refused: the query is {len(sql)} characters long, the limit is {MAX_SQL_CHARS}",
                             "too_long")
        with self._lock:
            worker = self._worker()
            start = time.monotonic()
            try:
                worker.send({"sql": sql})
                response = worker.read(start + self.time_limit_s + KILL_GRACE_S)
            except (WorkerDied, BrokenPipeError) as err:
                code = err.code if isinstance(err, WorkerDied) else worker.exit_code()
                _stop_worker(self._holder)  # a fresh worker serves the next query
                raise SqlRefused(f"query stopped: it crashed the sandbox worker (exit code {code}); a fresh worker "
                                 f"serves the next query", "crashed") from None
            except OSError as err:
                _stop_worker(self._holder)
                raise SqlRefused(f"query stopped: the sandbox worker failed ({err}); it will be restarted",
                                 "crashed") from None
            except BaseException:  # e.g. KeyboardInterrupt: a half-answered worker must not serve the next query
                _stop_worker(self._holder)
                raise
            elapsed = time.monotonic() - start
            if response is None:
                _stop_worker(self._holder)  # a fresh worker serves the next query
                raise SqlRefused(f"query stopped: it ran longer than the {self.time_limit_s:g} s time limit "
                                 f"and did not yield, so the sandbox worker was restarted", "timeout")
        if not response.get("ok"):
            raise SqlRefused(response.get("message", "query failed"), response.get("category", "error"))
        return SqlResult(sql=sql, columns=response["columns"], column_types=response["column_types"],
                         rows=response["rows"], truncated=response["truncated"],
                         truncated_reason=response.get("truncated_reason"), elapsed_s=elapsed)

    def close(self) -> None:
        """Stop the worker process."""
        with self._lock:
            _stop_worker(self._holder)

    def __enter__(self) -> SqlSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[2]))
    print("usage: python -m audit_tools.sql_sandbox --worker SETTINGS_JSON (started by SqlSandbox)", file=sys.stderr)
    sys.exit(2)
