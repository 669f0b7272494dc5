"""The `pinhole` console entry point: choose the allocator first, then import and run the app.

Kept apart from `game.cli` so that the restart under a fast allocator happens before torch and
the rest are imported (and so that importing `game.cli`, as tests do, restarts nothing).
"""

from __future__ import annotations

from pinhole.allocator import reexec_with_fast_allocator


def main() -> None:
    reexec_with_fast_allocator()
    from game.cli import app

    app()
