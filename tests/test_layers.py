"""The layers are enforced, not described: import-linter's contracts hold, and breaking one fails.

`make test` runs `lint-imports` and `ruff check` before the suite; these tests prove the contracts
can fail (a wrong arrow added to a copy of the source is caught) and that the sealed part of an
organism is referred to only where the contracts allow it.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pinhole", "organisms", "audit_tools", "game", "ui")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Packages that must never name the sealed part of an organism (the factory and the game's scoring may).
NEVER_SEALED = ("pinhole", "audit_tools", "ui")


def _copy_source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_contracts_hold_on_the_source(tmp_path: Path) -> None:
    result = _lint_imports(_copy_source(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "BROKEN" not in result.stdout


@pytest.mark.parametrize(("module", "line", "explanation"), [
    ("audit_tools/battery.py", "import organisms.cli", "audit_tools is not allowed to import organisms"),
    ("pinhole/workspace.py", "import audit_tools.target", "pinhole is not allowed to import audit_tools"),
    ("audit_tools/embeddings.py", "from organisms import sealed", "not allowed to import organisms.sealed"),
    ("organisms/detectors.py", "from organisms.spec import Detector as _D",
     "organisms.detectors is not allowed to import organisms.spec"),
    ("ui/__init__.py", "import organisms.spec", "ui is not allowed to import organisms"),
])
def test_a_wrong_arrow_breaks_a_contract(tmp_path: Path, module: str, line: str, explanation: str) -> None:
    root = _copy_source(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    result = _lint_imports(root)
    assert result.returncode != 0, result.stdout
    assert explanation in result.stdout, result.stdout


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


@pytest.mark.parametrize("package", NEVER_SEALED)
def test_team_facing_packages_never_name_the_sealed_part(package: str) -> None:
    offenders = [f"{path.relative_to(REPO)}: {text!r}" for path in sorted((REPO / package).rglob("*.py"))
                 for text in _string_constants(path) if "sealed" in text.lower()]
    assert not offenders, offenders


def test_ruff_passes() -> None:
    result = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "."], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
