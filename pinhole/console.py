"""Command-line output shared by every `pinhole` sub-command.

- `out` prints results on stdout, `console` prints progress, notes and errors on stderr.
- A command that takes `--json` prints exactly one JSON document on stdout (`emit_json`): while it
  runs, anything else that writes to stdout (TRL's metric dicts, a library's print) is sent to
  stderr instead, so `pinhole ... --json | jq` always works.
- `clear_errors` turns expected failures (a bad file, field or value, an unreachable server) into
  one red line naming the problem and exit code 2, never a traceback.
- User text is never read as Rich markup: every message goes through `escape`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]

_json_stream: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar("pinhole_json_stream", default=None)

# Failures a user can cause and fix: shown as one line, exit code 2. UnicodeError covers undecodable input files.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError,
                                                IsADirectoryError, PermissionError, ConnectionError, UnicodeError)


def error_line(err: BaseException) -> str:
    """The one-line message of a user error, escaped for Rich."""
    return escape(str(err) or type(err).__name__)


def print_error(err: BaseException | str) -> None:
    """Print `error: <message>` in red on stderr (the message is never read as markup)."""
    text = escape(err) if isinstance(err, str) else error_line(err)
    console.print(f"[red]error:[/red] {text}")


@contextlib.contextmanager
def json_stdout(enabled: bool) -> Any:
    """While enabled, keep stdout for the one JSON document: other writes to stdout go to stderr."""
    if not enabled:
        yield
        return
    token = _json_stream.set(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _json_stream.reset(token)


def check_text_arguments(arguments: dict[str, Any]) -> None:
    """Raise a ValueError naming the argument when a text argument is not valid UTF-8 (the shell passes
    undecodable bytes through as surrogates, which would fail later, deep inside a tokenizer)."""
    for name, value in arguments.items():
        for text in value if isinstance(value, list | tuple) else [value]:
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise ValueError(f"--{name.replace('_', '-')}: not valid UTF-8 text (an undecodable byte at "
                                 f"character {err.start}: {text[max(0, err.start - 20):err.start]!r}…)") from None


def clear_errors(command: Callable) -> Callable:
    """Decorate a Typer command: user errors become one red line and exit 2; with `as_json=True`
    stdout carries only the JSON document; text arguments are checked to be valid UTF-8."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            check_text_arguments(kwargs)
            with json_stdout(bool(kwargs.get("as_json"))):
                return command(*args, **kwargs)
        except USER_ERRORS as err:
            print_error(err)
            raise typer.Exit(2) from err

    return wrapper


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout (the real one, even inside `json_stdout`)."""
    stream = _json_stream.get() or sys.stdout
    stream.write(json.dumps(obj, default=str, indent=2, ensure_ascii=False) + "\n")
    stream.flush()
