"""The auditing benchmark as a script: organisms x tiers x seeds with the scripted auditor, and the per-tool
ablation. Prints the table and writes JSON, Markdown and a plot (see `pinhole bench audit --help`).

    python bench/audit.py workspace/organisms/org-1 workspace/organisms/org-2 --tiers blackbox,data,full --ablate
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package before this folder (bench/game.py)

from game.audit_bench_cli import bench_audit

if __name__ == "__main__":
    typer.run(bench_audit)
