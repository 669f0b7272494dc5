"""`pinhole demo`: prepare the demo (organisms, SAEs, indexes, a running game; cached) and serve it.

`make demo` runs it. The first run builds everything (long on a CPU: the README says how long it took
here); later runs find everything in the workspace and start serving within a minute. The admin token
and the teams' tokens are kept in `<workspace>/demo/` (mode 0600) and printed on every run.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pinhole.console import clear_errors, console, out


@clear_errors
def demo(
    host: Annotated[str, typer.Option(help="The address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port to serve on.")] = 8501,
    evaluate: Annotated[bool, typer.Option(help="Also run each organism's implant evaluation (the longest step "
                                                "on a CPU; the game does not need it).")] = False,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the game once it is ready.")]
    = True,
) -> None:
    """Build the demo organisms (rm_sycophancy and the benign decoy), their SAEs and indexes, start a demo game
    with a `full` and a `blackbox` team, print the tokens and the URL, and serve."""
    from game.demo import prepare_demo, tokens_path
    from game.serve_cli import serve
    from pinhole.workspace import atomic_write_bytes

    setup = prepare_demo(evaluate=evaluate)
    admin_file = tokens_path().with_name("admin.token")
    if not admin_file.is_file():
        atomic_write_bytes(admin_file, secrets.token_urlsafe(24).encode(), private=True)
    for step, seconds in setup.seconds.items():
        console.print(f"{step}: {seconds / 60:.1f} min")
    out.print(f"[bold]Demo game[/bold] {escape(setup.game)}: organisms {', '.join(setup.organisms)}")
    out.print(f"  admin token: {escape(admin_file.read_text().strip())}")
    for team, token in setup.tokens.items():
        out.print(f"  team {team} ({setup.teams[team]} tier): {escape(token)}")
    out.print(f"  URL: http://{host}:{port}")
    if serve_after:
        serve(host=host, port=port, workspace=None, admin_token_file=Path(admin_file), new_admin_token=False)
