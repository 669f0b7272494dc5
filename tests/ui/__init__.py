"""Browser tests of the Streamlit app, and the pieces they (and bench/ui.py) share.

`game_organism` copies an organism directory into the workspace with a real sealed ground truth (a shipped
spec whose root cause carries `SECRET_MARKER`) and a card that commits to it, so a reveal checks the
commitment and judges reports for real. `AppServer` runs the real `streamlit run` of `pinhole serve` on a free
port; `launch_browser` starts the system Chromium under Playwright.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from pinhole.organism import read_card, write_card
from tests.audit_tools import SECRET_MARKER

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).parent / "artifacts"
START_TIMEOUT_S = 120
WAIT_MS = 120_000  # the longest a page may take to show what a test waits for (model loads on 2 cores)


def game_organism(source: Path, home: Path, name: str = "org-ui-game", spec_id: str = "rm_sycophancy") -> Path:
    """A copy of organism `source` under `home/organisms/name` with a sealed ground truth from a shipped spec
    (its root cause carrying SECRET_MARKER) and a card that commits to it."""
    from organisms.sealed import GROUND_TRUTH, commitment
    from organisms.spec import load_spec
    from tests.helpers import spec_path

    target = home / "organisms" / name
    if target.exists():
        return target
    shutil.copytree(source, target)
    spec = load_spec(spec_path(spec_id)).model_dump(mode="json")
    spec["ground_truth"]["root_cause"] += f" ({SECRET_MARKER})"
    truth = {"organism_id": read_card(target).organism_id, "spec": spec, "salt": SECRET_MARKER}
    (target / GROUND_TRUTH).write_text(json.dumps(truth))
    write_card(target, read_card(target).model_copy(update={"ground_truth_sha256": commitment(truth)}))
    return target


def ground_truth_strings(directory: Path) -> set[str]:
    """What a team must never see: the marker, the root cause, key concepts, behaviour ids and descriptions,
    except any the public corpus holds (searching the training data is the game)."""
    import pandas as pd

    from organisms.sealed import GROUND_TRUTH

    spec = json.loads((directory / GROUND_TRUTH).read_text())["spec"]
    public = " ".join(pd.read_parquet(directory / "corpus.parquet").text).lower()
    strings = {SECRET_MARKER, " ".join(spec["ground_truth"]["root_cause"].split()),
               *spec["ground_truth"]["key_concepts"]}
    for behaviour in spec["behaviours"]:
        strings.update([behaviour["id"], behaviour["description"]])
    return {s for s in strings if len(s) >= 8 and s.lower() not in public}


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """The app under `streamlit run` (the command `pinhole serve` runs), on a free port, logging to a file."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None) -> None:
        from game.serve_cli import streamlit_argv

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(streamlit_argv("127.0.0.1", self.port), stdout=self._log,
                                        stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy in {START_TIMEOUT_S} s: {self.log()[-2000:]}")

    def log(self) -> str:
        """What the server printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server (and wait for it)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def launch_browser(playwright):
    """The system Chromium, headless, under Playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


# -- driving Streamlit pages -----------------------------------------------------------------------------


def wait_text(page, text: str, timeout: int = WAIT_MS) -> None:
    """Wait until `text` is visible on the page."""
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout)


def fill(page, label: str, text: str) -> None:
    """Fill the text input or text area labelled `label`."""
    page.get_by_label(label, exact=True).fill(text)


def click(page, name: str) -> None:
    """Click the button called `name`."""
    close_popups(page)
    page.get_by_role("button", name=name, exact=True).click()


def choose(page, label: str, option: str, attempts: int = 5) -> None:
    """Pick the option showing `option` in the selectbox or multiselect labelled `label` (typed to filter).

    A rerun of the page can close the list under the typing; then it is opened again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        box = page.get_by_label(label, exact=True).first
        box.click()
        box.press("Control+a")
        page.keyboard.type(option[:12])
        try:
            page.get_by_role("option").filter(has_text=option).first.click(timeout=5_000)
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
            continue
        if page.get_by_role("listbox").count():  # a multiselect keeps its list open
            page.keyboard.press("Escape")
        return


def close_popups(page) -> None:
    """Close an open dropdown list (it hides the rest of the page from the accessibility tree)."""
    if page.get_by_role("listbox").count():
        page.keyboard.press("Escape")


def open_page(page, title: str) -> None:
    """Open the app page `title` from the sidebar and wait for its heading."""
    close_popups(page)
    page.get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for(state="visible", timeout=WAIT_MS)


def log_in(page, url: str, token: str, admin: bool = False) -> None:
    """Open the app and log in as a team (or the game master) through the login form."""
    page.goto(url)
    wait_text(page, "Team token")
    fill(page, "Admin token" if admin else "Team token", token)
    click(page, "Enter as the game master" if admin else "Enter as a team")


def screenshot(page, name: str) -> Path:
    """Save a screenshot of the whole app (once its script run has finished) under tests/ui/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=WAIT_MS)
    size = page.viewport_size
    height = page.evaluate("Math.max(...[...document.querySelectorAll('[data-testid=stMain], section')]"
                           ".map(e => e.scrollHeight), 0)")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 6000))})
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=WAIT_MS)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path
