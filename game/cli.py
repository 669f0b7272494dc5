"""The `pinhole` command: one Typer app to which each package contributes its sub-commands."""

from __future__ import annotations

import typer

from audit_tools.cli import tools_app
from audit_tools.sae_cli import sae_app
from game import game_cli  # noqa: F401  (registers the `pinhole game` session commands)
from game.audit_bench_cli import bench_app
from game.audit_cli import audit
from game.demo_cli import demo
from game.scoring_cli import game_app, score
from game.serve_cli import serve
from organisms.cli import base_app, organism_app

app = typer.Typer(
    help="Pinhole: plant hidden objectives in chat models, audit them blind, score the findings.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(base_app, name="base")
app.add_typer(organism_app, name="organism")
app.add_typer(tools_app, name="tools")
app.add_typer(sae_app, name="sae")
app.add_typer(game_app, name="game")
app.add_typer(bench_app, name="bench")
app.command("score")(score)
app.command("serve")(serve)
app.command("demo")(demo)
app.command("audit")(audit)


if __name__ == "__main__":
    app()
