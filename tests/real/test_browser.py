"""The course in a real browser, as a learner uses it: JupyterLab serves copies of notebook 05
and of the student exercises; headless Chromium (Debian's, driven by Playwright) runs every cell
and

* clicks the stepper's Next / Back / the recursion switch (the highlighted entry and the
  verdict change with each click);
* in 05, finds the Reveal button locked, types a prediction, reveals, and reads the verdict
  and the resolver's steps;
* in the student copy, answers exercise 3 wrongly (a ✗ that says what is wrong and a nudge,
  not the answer), then rightly (✓).

Needs ``chromium`` (``apt-get install chromium fonts-dejavu-core``) and the ``playwright`` Python
package (no browser download: the system Chromium is launched).  Missing → skipped, unless
``REALIP_REQUIRE_REAL=1`` → failed.  Screenshots go to the test's temporary directory; with
``REALIP_UPDATE_DOCS=1`` the stepper's screenshot also replaces ``docs/stepper.png``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parent.parent.parent
NOTEBOOK = "05-websocket-multi-tier.ipynb"
STUDENT = "09-workshop-exercises-student.ipynb"
#: This suite's loopback address (each test suite that listens has its own 127.0.x.0/24).
HOST = "127.0.46.1"
REQUIRE = os.environ.get("REALIP_REQUIRE_REAL") == "1"


def _need(ok: bool, message: str) -> None:
    if not ok:
        if REQUIRE:
            pytest.fail(f"REALIP_REQUIRE_REAL=1 but {message}")
        pytest.skip(message)


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                        else None)
    _need(path is not None, "chromium is not installed (apt-get install chromium "
          "fonts-dejavu-core)")
    assert path is not None
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _settings(settings: Path) -> None:
    """No news toast, no update check, every cell kept in the page (no windowing)."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
            {"windowingMode": "none"},
    }
    for name, value in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[str]:
    """A private JupyterLab on 127.0.46.1 serving copies of the notebooks; its URL."""
    _chromium()
    _need(importlib.util.find_spec("jupyterlab") is not None,
          "jupyterlab is not installed (pip install -e '.[lab]')")
    _need(importlib.util.find_spec("playwright") is not None,
          "the playwright Python package is not installed (pip install playwright)")
    root = tmp_path / "notebooks"
    root.mkdir()
    for name in (NOTEBOOK, STUDENT):
        shutil.copy(ROOT / "notebooks" / name, root / name)
    _settings(tmp_path / "settings")
    port = _free_port()
    env = {**os.environ,
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
         f"--ip={HOST}", f"--port={port}", "--ServerApp.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n"
                            + (tmp_path / "lab.log").read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        # the server and the kernels it started share its process group
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


def _run_all(page: Any) -> None:
    """Edit → Clear Outputs of All Cells (the stored prompts go), then Run → Run All Cells once
    the kernel is connected; repeated when the first cell does not run (a Run All sent while
    the kernel is still connecting is dropped)."""
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=90_000)
    page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for(timeout=90_000)
    page.locator(".lm-MenuBar-item", has_text="Edit").first.click()
    page.locator(".lm-Menu-item", has_text="Clear Outputs of All Cells").first.click()
    page.locator(".jp-InputPrompt", has_text="[1]:").first.wait_for(state="detached",
                                                                     timeout=10_000)
    for _ in range(4):
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all'], "
                     ".lm-Menu-item[data-command='notebook:run-all-cells']").first.click()
        started = page.locator(".jp-InputPrompt", has_text="[1]:")
        try:
            started.first.wait_for(timeout=20_000)
            return
        except Exception:
            page.keyboard.press("Escape")
    pytest.fail("Run All never started the first cell")


def _text(page: Any, selector: str) -> str:
    text: str = page.locator(selector).first.inner_text()
    return " ".join(text.split())


def test_stepper_buttons_move_the_highlight_in_chromium(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = _chromium()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab}/lab/tree/{NOTEBOOK}?reset", wait_until="domcontentloaded")
            _run_all(page)
            stepper = page.locator(".realip-stepper")
            try:
                stepper.wait_for(timeout=120_000)
            except Exception:
                page.screenshot(path=str(shots / "00-no-stepper.png"), full_page=True)
                errors = page.locator(".jp-OutputArea-output[data-mime-type*='error']")
                pytest.fail(f"no stepper after Run All (screenshot in {shots}); error outputs: "
                            f"{errors.all_inner_texts()[:3]}")
            stepper.scroll_into_view_if_needed()
            active = ".realip-stepper .realip-entry-active"
            verdict = ".realip-stepper .realip-verdict"
            page.locator(active).wait_for()
            page.screenshot(path=str(shots / "01-notebook.png"))

            assert "172.16.0.200" in _text(page, active)  # step 1: the TCP peer
            first_verdict = _text(page, verdict)
            assert first_verdict.startswith("Step 1 of 3")

            page.locator(".realip-stepper button.realip-next").click()
            expect(page.locator(verdict)).to_contain_text("Step 2 of 3")
            assert "172.16.0.116" in _text(page, active)
            assert _text(page, verdict) != first_verdict

            page.locator(".realip-stepper button.realip-next").click()
            expect(page.locator(verdict)).to_contain_text("Step 3 of 3")
            assert "1.94.170.163" in _text(page, active)
            expect(page.locator(".realip-stepper .realip-result")).to_contain_text(
                "The client is 1.94.170.163")
            expect(page.locator(".realip-stepper .realip-entry-chosen")).to_contain_text(
                "1.94.170.163")
            stepper.screenshot(path=str(shots / "02-stepper-done.png"))

            page.locator(".realip-stepper button.realip-back").click()
            expect(page.locator(verdict)).to_contain_text("Step 2 of 3")
            assert "172.16.0.116" in _text(page, active)

            # real_ip_recursive off: nginx takes the nearest proxy
            page.locator(".realip-stepper input[type='checkbox']").click()
            expect(page.locator(".realip-stepper .realip-result")).to_contain_text(
                "The client is 172.16.0.116")
            page.locator(".realip-stepper input[type='checkbox']").click()
            # a change keeps the learner's step (2 of 3): one more Next ends the walk
            expect(page.locator(verdict)).to_contain_text("Step 2 of 3")
            page.locator(".realip-stepper button.realip-next").click()
            expect(page.locator(".realip-stepper .realip-result")).to_contain_text(
                "The client is 1.94.170.163")
            stepper.screenshot(path=str(shots / "03-stepper.png"))
            if os.environ.get("REALIP_UPDATE_DOCS") == "1":
                (ROOT / "docs").mkdir(exist_ok=True)
                shutil.copy(shots / "03-stepper.png", ROOT / "docs" / "stepper.png")
        finally:
            browser.close()
    assert (shots / "03-stepper.png").stat().st_size > 10_000


def _browser(p: Any) -> Any:
    return p.chromium.launch(executable_path=_chromium(), args=[
        "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])


def _open_and_run(page: Any, lab: str, name: str, ready: str) -> None:
    page.goto(f"{lab}/lab/tree/{name}?reset", wait_until="domcontentloaded")
    _run_all(page)
    page.locator(ready).first.wait_for(timeout=120_000)


def test_predict_then_reveal_in_chromium(lab: str, tmp_path: Path) -> None:
    """05: the Reveal button is locked until a prediction is typed; the reveal says whether
    it was right and why, with the resolver's own steps."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open_and_run(page, lab, NOTEBOOK, ".realip-predict")
            box = page.locator(".realip-predict", has_text="LB 3 keep").first
            box.wait_for(timeout=60_000)
            box.scroll_into_view_if_needed()
            button = box.locator("button.realip-reveal-button")
            expect(button).to_be_disabled()
            expect(box.locator(".realip-predict-result")).not_to_contain_text("1.94.170.163")
            field = box.locator(".realip-predict-input input")
            field.click()
            page.keyboard.type("172.16.0.116")  # the nearest proxy: a wrong prediction
            expect(button).to_be_enabled()
            button.click()
            result = box.locator(".realip-predict-result")
            expect(result).to_contain_text("✗ You said 172.16.0.116")
            expect(result).to_contain_text("it is 1.94.170.163")
            expect(result).to_contain_text("step 3: 1.94.170.163 is not trusted")
            expect(field).to_be_disabled()  # committed
            # nginx variables ($http_x_forwarded_for, $realip_remote_addr …) stay text
            expect(box.locator("mjx-container, .MathJax")).to_have_count(0)
            expect(result).to_contain_text("$realip_remote_addr")
            box.screenshot(path=str(tmp_path / "predict.png"))
        finally:
            browser.close()


def _answer(page: Any, check_call: str, source: str) -> Any:
    """Replace the exercise cell's source with *source*, run it, return its output area."""
    cell = page.locator(".jp-CodeCell", has_text=check_call).first
    cell.scroll_into_view_if_needed()
    editor = cell.locator(".cm-content").first
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source)
    page.keyboard.press("Shift+Enter")
    return cell.locator(".jp-OutputArea-output").first


def test_student_exercise_wrong_then_right_in_chromium(lab: str, tmp_path: Path) -> None:
    """The student copy: exercise 3 answered wrongly shows a ✗ saying what is wrong and a
    nudge (not the answer, not yet the pointer); answered rightly, ✓."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open_and_run(page, lab, STUDENT, ".realip-check")
            call = 'check("predict-untrusted", peername)'
            expect(page.locator(".jp-CodeCell", has_text=call).first).to_contain_text(
                "not answered yet", timeout=120_000)
            out = _answer(page, call, 'peername = "115.236.21.86:39817"\n' + call)
            expect(out).to_contain_text("✗", timeout=60_000)
            expect(out).to_contain_text("115.236.21.86 is the client's address")
            expect(out).to_contain_text("Hint 1:")
            text = out.inner_text()
            assert "Hint 2:" not in text and "41316" not in text and "172.16.0.116" not in text
            page.screenshot(path=str(tmp_path / "wrong.png"))
            out = _answer(page, call, 'peername = "172.16.0.116:41316"\n' + call)
            expect(out).to_contain_text("Solved: 2 of 2 checks pass.", timeout=60_000)
            expect(out).not_to_contain_text("✗")
            # exercise 7's checker output, whose rows quote $remote_addr, is no LaTeX
            call7 = 'check("ws-fix-edge", lb1_headers)'
            out7 = _answer(page, call7, 'lb1_headers = {"X-Forwarded-For": "$remote_addr", '
                           '"X-Forwarded-Port": "$http_x_forwarded_port"}\n' + call7)
            expect(out7).to_contain_text("Hint 1:", timeout=60_000)
            expect(out7.locator("mjx-container, .MathJax")).to_have_count(0)
            page.screenshot(path=str(tmp_path / "right.png"))
        finally:
            browser.close()
