"""Atomic writes: a failure mid-write leaves the previous file or directory intact and no debris."""

from __future__ import annotations

import os

import pytest

from pinhole import workspace as artifacts
from pinhole.workspace import atomic_directory, atomic_write_json, atomic_write_text, read_json


def test_atomic_write_replaces_whole_file(tmp_path) -> None:
    target = tmp_path / "card.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert read_json(target) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_failed_rename_keeps_old_content_and_cleans_temp(tmp_path, monkeypatch) -> None:
    target = tmp_path / "notes.txt"
    atomic_write_text(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_atomic_directory_publishes_only_on_success(tmp_path) -> None:
    target = tmp_path / "organism"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "a.txt").write_text("half-written")
            raise RuntimeError("interrupted")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == ["organism"]


def test_read_json_names_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="bad.json: invalid JSON"):
        read_json(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(tmp_path / "missing.json")
