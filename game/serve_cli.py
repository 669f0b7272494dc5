"""`pinhole serve`: start the browser game (the Streamlit app in `ui/`) on one workspace.

    pinhole serve                                   # http://127.0.0.1:8501, workspace $PINHOLE_HOME
    pinhole serve --host 0.0.0.0 --port 8080 --workspace /srv/pinhole
    pinhole serve --admin-token-file /etc/pinhole/admin.token   # the operator keeps the token

The game master's admin token: only its hash is kept, in `<workspace>/admin_token.sha256` (0600). The first
start makes a token and prints it once; `--new-admin-token` replaces it; `--admin-token-file` or the
environment variable `PINHOLE_ADMIN_TOKEN` sets one the operator keeps elsewhere. Teams log in with the
tokens `pinhole game add-team` (or the game master's page) printed. The app's deployment settings (XSRF
protection, no error details, headless, no usage statistics) are in `ui/.streamlit/config.toml`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from pinhole.console import clear_errors, out

ADMIN_TOKEN_ENV = "PINHOLE_ADMIN_TOKEN"


def app_path() -> Path:
    """The Streamlit script of the browser game (found without importing the `ui` package, the layer above)."""
    spec = importlib.util.find_spec("ui")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the `ui` package is not installed with Pinhole")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def streamlit_argv(host: str, port: int) -> list[str]:
    """The command that runs the app on `host:port` (the rest of its settings come from its config.toml)."""
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), "--server.address", host,
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def prepare_admin_token(token_file: Path | None, new_token: bool) -> str | None:
    """Set up the admin token for the workspace; returns a newly made token (to print once) or None."""
    from game.admin import has_admin_token, new_admin_token, set_admin_token

    if token_file is not None:
        try:
            set_admin_token(token_file.read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(f"{token_file}: cannot read the admin token ({err.strerror or err})") from None
        return None
    if os.environ.get(ADMIN_TOKEN_ENV):
        set_admin_token(os.environ[ADMIN_TOKEN_ENV])
        return None
    if new_token or not has_admin_token():
        return new_admin_token()
    return None


@clear_errors
def serve(host: Annotated[str, typer.Option(help="The address to listen on (127.0.0.1: this machine only; put "
                                                "a TLS reverse proxy in front for anything else).")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535, help="The port to listen on.")] = 8501,
          workspace: Annotated[Path | None, typer.Option(help="The workspace (default: $PINHOLE_HOME or "
                                                              "./workspace): its game database, organisms and "
                                                              "the admin token's hash.")] = None,
          admin_token_file: Annotated[Path | None, typer.Option(help="A file holding the admin token to use "
                                                                     "(kept by the operator, outside the "
                                                                     "repository).")] = None,
          new_admin_token: Annotated[bool, typer.Option("--new-admin-token", help="Make a new admin token "
                                                        "(printed once), replacing the earlier one.")] = False,
          ) -> None:
    """Serve the browser game: teams log in with their token, the game master with the admin token."""
    from game.admin import admin_hash_path

    if workspace is not None:
        os.environ["PINHOLE_HOME"] = str(workspace.resolve())
    token = prepare_admin_token(admin_token_file, new_admin_token)
    if token is not None:
        out.print(f"the game master's admin token, shown once (only its hash is kept, in {admin_hash_path()}):")
        out.print(f"  [bold]{token}[/bold]")
    else:
        out.print(f"admin token: set up earlier (hash in {admin_hash_path()}; --new-admin-token replaces it)")
    out.print(f"serving the game on http://{host}:{port} (workspace {os.environ.get('PINHOLE_HOME', 'workspace')})")
    sys.stdout.flush()
    raise typer.Exit(subprocess.call(streamlit_argv(host, port), env=os.environ.copy()))
