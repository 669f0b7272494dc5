"""Messages for records that fail validation: every problem names its field, in one line."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple) -> str:
    """A pydantic error location as a dotted field path (`behaviours.0.detector`), or `(top level)`."""
    return ".".join(str(part) for part in loc) or "(top level)"


def validation_problems(err: ValidationError) -> str:
    """Every problem of `err` as "field `path`: message", joined by "; "."""
    return "; ".join(f"field `{field_path(e['loc'])}`: {e['msg']}" for e in err.errors())
