"""The cluster browser of notebook 01, used for real: JupyterLab in headless Chromium.

A fixture starts JupyterLab on a copy of the notebook; Playwright runs all its cells
from the menu, moves the cluster slider with the keyboard and checks that the figure
changed. It needs Debian's ``chromium`` (Playwright's own browser downloads do not
work everywhere); ``CALOTOOLS_CHROMIUM`` points at another Chromium binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "01_cluster_images.ipynb"
SKIP_MESSAGE = (
    "install Debian's chromium (apt-get install chromium) to run the browser test; "
    ".ci/run does. CALOTOOLS_CHROMIUM=/path/to/chromium chooses another binary"
)
# These flags let Chromium run headless as root on a machine with no network and no GPU;
# without the background-networking ones it keeps trying to reach Google's servers.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_S = 180  # the notebook may have to make the quick data set first (~30 s on 2 cores)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chromium_path() -> str | None:
    """The Chromium binary: ``CALOTOOLS_CHROMIUM``, else ``chromium`` on the PATH."""
    path = os.environ.get("CALOTOOLS_CHROMIUM") or shutil.which("chromium")
    return path if path and os.access(path, os.X_OK) else None


def free_port() -> int:
    """A localhost port that is free now (JupyterLab is told not to try others)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    log: Path


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary, with Playwright to drive it; the test skips without them."""
    path = chromium_path()
    if path is None:
        pytest.skip(SKIP_MESSAGE)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"playwright does not import (pip install -e '.[test]'); {SKIP_MESSAGE}")
    return path


@pytest.fixture(scope="module")
def lab(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a copy of notebook 01, so that the run writes nothing into notebooks/.

    The notebook reads ``../data/quick``; ``CALOTOOLS_DATA`` sends it to the repository's
    data/ folder instead, the git-ignored cache that ``make test``'s notebook run fills too.
    """
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / "notebooks" / NOTEBOOK)
    # A private Jupyter configuration, so that no user settings or workspaces get in,
    # with the news pop-up off.
    config = root / "jupyter"
    (config / "labconfig").mkdir(parents=True)
    disabled = {"@jupyterlab/apputils-extension:announcements": True}
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": disabled})
    )
    env = {
        **os.environ,
        "CALOTOOLS_QUICK": "1",
        "CALOTOOLS_DATA": os.environ.get("CALOTOOLS_DATA", str(REPO / "data")),
        "CALOTOOLS_FIGURES": str(root / "outputs" / "figures"),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(root / "data"),  # the kernel comes from sys.prefix all the same
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    port, token = free_port(), "calotools-browser-test"
    log = root / "jupyter.log"
    command = [
        *(sys.executable, "-m", "jupyter", "lab", "--no-browser"),
        *("--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0"),
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root / 'notebooks'}",
        f"--LabApp.workspaces_dir={root / 'workspaces'}",
        f"--LabApp.user_settings_dir={root / 'settings'}",
        "--ServerApp.terminals_enabled=False",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        # Its own session, so that the kernel it starts can be stopped with it.
        server = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_server(server, f"{url}/api/status?token={token}", log)
        yield Lab(url, token, log)
    finally:
        server.terminate()  # Jupyter shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wait_for_server(server: subprocess.Popen, status_url: str, log: Path) -> None:
    """Wait until JupyterLab answers, failing with its log if it exits or hangs."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(status_url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer within {TIMEOUT_S} s:\n{log.read_text()}")


def wait_for_kernel(lab: Lab) -> None:
    """Wait until the notebook's kernel is idle with the page connected to it.

    The page's own kernel indicator says "idle" before any kernel exists, and Run All
    Cells then asks for a kernel in a dialog; the server knows better.
    """
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        sessions_url = f"{lab.url}/api/sessions?token={lab.token}"
        with urllib.request.urlopen(sessions_url, timeout=10) as response:
            sessions = json.load(response)
        kernels = [s["kernel"] for s in sessions if s["path"].endswith(NOTEBOOK)]
        if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
            return
        time.sleep(0.25)
    pytest.fail(f"the kernel of {NOTEBOOK} was not idle within {TIMEOUT_S} s")


@pytest.fixture
def page(chromium: str, lab: Lab) -> Iterator[Page]:
    """A fresh Chromium page."""
    from playwright.sync_api import sync_playwright

    # Playwright's launch gives Chromium a new, empty profile (user data dir) every time.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_S * 1000)
        try:
            yield page
        finally:
            browser.close()


@contextlib.contextmanager
def kept_on_failure(page: Page, lab: Lab, folder: Path) -> Iterator[None]:
    """On a failure, keep a screenshot of the page and the JupyterLab log in ``folder``."""
    try:
        yield
    except BaseException:
        page.screenshot(path=folder / "failure.png", full_page=True)
        shutil.copy(lab.log, folder / "jupyter.log")
        print(f"screenshot and JupyterLab log of the failure: {folder}")
        raise


# The SHA-256 of the PNG on display, read back from the blob: URL that ipywidgets gives it.
DIGEST_JS = """async image => {
    const data = await (await fetch(image.src)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    return Array.from(digest, b => b.toString(16).padStart(2, "0")).join("");
}"""


def test_moving_the_cluster_slider_redraws_the_cluster_browser(
    lab: Lab, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with kept_on_failure(page, lab, tmp_path):
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
        wait_for_kernel(lab)

        # Run → Run All Cells, as a user would.
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).click()

        widget = page.locator(".jp-OutputArea-output .widget-vbox").last
        handle = widget.locator(".widget-hslider .noUi-handle")
        image = widget.locator("img.widget-image")
        handle.wait_for()
        image.evaluate("image => image.decode()")  # resolves once the PNG is on display
        assert "cluster_E = " in widget.locator(".widget-html").inner_text()
        before_src, before_digest = image.get_attribute("src"), image.evaluate(DIGEST_JS)
        before_shot = image.screenshot()

        # With continuous_update=False the kernel hears of the slider when it is
        # released; a key press on the handle is a whole move.
        handle.focus()
        page.keyboard.press("ArrowRight")
        expect(image).not_to_have_attribute("src", before_src, timeout=TIMEOUT_S * 1000)
        image.evaluate("image => image.decode()")
        assert widget.locator(".widget-readout").inner_text() == "1"
        assert image.evaluate(DIGEST_JS) != before_digest
        assert image.screenshot() != before_shot
