"""The fast-allocator restart: happens once, sets the environment, and can be turned off."""

from __future__ import annotations

import os
import subprocess
import sys

from pinhole.allocator import fast_allocator_env

SCRIPT = """
import os, sys
from pinhole.allocator import reexec_with_fast_allocator
reexec_with_fast_allocator()
print(os.environ.get("PINHOLE_ALLOCATOR_ACTIVE", "-"), os.environ.get("LD_PRELOAD", "-"),
      os.environ.get("GLIBC_TUNABLES", "-"), sys.argv[1:])
"""


def _run(tmp_path, **env) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    clean = {k: v for k, v in os.environ.items() if k not in ("PINHOLE_ALLOCATOR_ACTIVE", "LD_PRELOAD")}
    done = subprocess.run([sys.executable, str(script), "a", "b"], env={**clean, **env}, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip().split(maxsplit=3)


def test_restart_applies_the_allocator_and_keeps_arguments(tmp_path) -> None:
    active, preload, tunables, argv = _run(tmp_path)
    expected = fast_allocator_env()
    if not expected:  # not Linux: nothing to do
        assert active == "-"
        return
    assert active == "1"
    assert argv == "['a', 'b']"
    if "LD_PRELOAD" in expected:
        assert "tcmalloc" in preload
    else:
        assert "glibc.malloc.hugetlb=1" in tunables


def test_system_allocator_opt_out(tmp_path) -> None:
    active, preload, _, _ = _run(tmp_path, PINHOLE_ALLOCATOR="system")
    assert active == "-" and preload == "-"
