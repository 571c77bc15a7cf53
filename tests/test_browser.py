"""The lessons' widgets work where students use them: in JupyterLab, in a real browser.

For two widget-heavy lessons this test starts JupyterLab on a temporary copy of notebooks/, opens
the lesson in headless Chromium (the system's ``chromium``, driven by Playwright — no browser is
downloaded), runs all cells, waits for the kernel to finish, moves one slider of the lesson's
explorer with the keyboard, as a student would, and checks that the explorer's figure was redrawn.
Screenshots of the explorer before and after go to build/browser/.

Skipped when no Chromium is installed, unless the environment variable CI is set (then a missing
Chromium is an error: .ci/run installs Debian's ``chromium`` first).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from preloaded_kernel import ordinary_environment

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SHOTS = ROOT / "build" / "browser"
JUPYTER = Path(sys.executable).parent / "jupyter"
RUN_ALL_TIMEOUT = 300  # seconds for a whole lesson to run in the browser's kernel

#: (lesson, the slider's label, key presses that move it). Each lesson's explorer draws a matplotlib
#: figure into the widget's output area; moving the slider must redraw it.
CASES = [
    ("06_focal_loss.ipynb", "γ (focus)", ["ArrowRight"] * 4),  # γ 2.0 → 4.0 (step 0.5)
    ("01_boxes_and_iou.ipynb", "centre x", ["ArrowLeft"] * 15),  # box B slides 15 px to the left
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = find_chromium()
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("no Chromium found: install it (Debian/Ubuntu: `sudo apt-get install -y chromium`) "
                "to run the real-browser test", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_lab_settings(settings: Path) -> None:
    """JupyterLab settings for a quiet, predictable page: no news/update pop-ups; every notebook
    cell stays in the page (no virtual scrolling), so the explorer can be found however far down."""
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a copy of notebooks/ on a free loopback port: yields its base URL with token."""
    home = tmp_path_factory.mktemp("lab")
    course = home / "notebooks"
    shutil.copytree(NOTEBOOKS, course, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "checkpoints", "*.pt"))
    write_lab_settings(home / "settings")
    token, port = secrets.token_hex(16), free_port()
    command = [str(JUPYTER), "lab", "--no-browser", f"--ServerApp.token={token}", f"--port={port}",
               "--ip=127.0.0.1", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={course}",
               "--LabApp.expose_app_in_browser=True",  # lets the test run JupyterLab commands (as Galata does)
               f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    # keep the user's own Jupyter/IPython configuration, extensions and state out of the test (and JupyterLab's
    # kernels ordinary ones, as a student's, not the preloaded ones of the other tests: tests/preloaded_kernel.py)
    env = {**ordinary_environment(), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "IPYTHONDIR": str(home / "ipython")}
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(command, cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (home / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:  # only reached with CI set: there a missing browser is an error, not a skip
        pytest.fail("CI is set but no Chromium is installed: .ci/run should have run "
                    "`apt-get install -y chromium`", pytrace=False)
    args = ["--disable-dev-shm-usage"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


def run_all_cells(page: Page) -> None:
    """Run the open notebook's cells (JupyterLab's Run → Run All Cells) and wait until every cell
    has run and the kernel is idle; fail on any error output."""
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
    page.evaluate("""async () => {
        const panel = window.jupyterapp.shell.currentWidget;
        const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('no kernel after 120 s')), 120000));
        await Promise.race([Promise.all([panel.context.ready, panel.sessionContext.ready]), timeout]);
    }""")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # done when every code cell has an execution count and the kernel is idle — or as soon as a
    # cell fails (JupyterLab then skips the cells after it)
    page.wait_for_function("""() => {
        const panel = window.jupyterapp.shell.currentWidget;
        const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
        const cells = panel.content.widgets.filter(cell => cell.model.type === 'code');
        const failed = cells.some(cell => Array.from({length: cell.model.outputs.length},
            (_, i) => cell.model.outputs.get(i).type).includes('error'));
        return failed || (kernel && kernel.status === 'idle' && cells.every(cell => cell.model.executionCount !== null));
    }""", timeout=RUN_ALL_TIMEOUT * 1000, polling=1000)
    errors = page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
        .filter(cell => cell.model.type === 'code')
        .flatMap(cell => Array.from({length: cell.model.outputs.length}, (_, i) => cell.model.outputs.get(i).toJSON()))
        .filter(output => output.output_type === 'error')
        .map(output => output.ename + ': ' + output.evalue)""")
    assert not errors, f"cells failed in JupyterLab: {errors}"


def kernel_idle(page: Page) -> bool:
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'")


def wait_until_settled(page: Page, figure, old_src: str, timeout: float = 90, quiet: float = 2.0) -> str | None:
    """Wait until the figure has been redrawn (its image differs from ``old_src``) and then stays
    the same, with the kernel idle, for ``quiet`` seconds: each key press triggers one redraw, and
    the last one is the figure to look at. Returns the final image's ``src``."""
    deadline = time.monotonic() + timeout
    last, since = figure.get_attribute("src"), time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        now = figure.get_attribute("src")
        if now != last:
            last, since = now, time.monotonic()
        elif last != old_src and time.monotonic() - since >= quiet and kernel_idle(page):
            break
    return last


@pytest.mark.parametrize("lesson, label, keys", CASES, ids=[c[0].removesuffix(".ipynb") for c in CASES])
def test_slider_redraws_the_figure(browser, lab, lesson, label, keys):
    url, token = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = lesson.removesuffix(".ipynb")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/lab/workspaces/{stem}/tree/{lesson}?token={token}", timeout=120_000)
        run_all_cells(page)

        # the explorer: the ipywidgets `interactive` whose slider carries `label`
        slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=label))
        explorer = page.locator(".widget-interact", has=slider)
        figure = explorer.locator(".widget-output img")
        explorer.scroll_into_view_if_needed()
        figure.wait_for(timeout=60_000)
        before_value = slider.locator(".widget-readout").inner_text()
        before_image = figure.get_attribute("src")
        before_shot = explorer.screenshot(path=SHOTS / f"{stem}_before.png")

        handle = slider.locator(".noUi-handle")
        handle.focus()
        for key in keys:
            handle.press(key)
        after_image = wait_until_settled(page, figure, before_image)
        after_value = slider.locator(".widget-readout").inner_text()
        after_shot = explorer.screenshot(path=SHOTS / f"{stem}_after.png")

        assert after_value != before_value, f"the '{label}' slider did not move ({before_value} → {after_value})"
        assert after_image != before_image, f"moving '{label}' from {before_value} to {after_value} did not redraw the figure"
        assert after_shot != before_shot, "the explorer looks the same before and after moving the slider"
    except Exception:
        page.screenshot(path=SHOTS / f"{stem}_failure.png", full_page=False)
        raise
    finally:
        try:  # stop this lesson's kernel: the next lesson needs the CPU
            page.evaluate("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                          " && window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        finally:
            page.close()
