"""The governance report in a real browser: headless Chromium over the DevTools protocol.

Chromium opens the report from disk (file://, offline); the test collects console errors and
uncaught exceptions, waits until every plotly chart has drawn its SVG, and saves a screenshot
to ``tests/artifacts/governance-report.png``. Without a Chromium binary the test is skipped
with the reason (install Debian's ``chromium``, or set ``LIQBT_CHROMIUM``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_report import report, run  # noqa: F401  (module fixtures: the run report)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--window-size=1366,1000", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0")


def find_chromium() -> str | None:
    """Return a Chromium/Chrome executable: ``LIQBT_CHROMIUM``, else the usual names."""
    explicit = os.environ.get("LIQBT_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """A minimal DevTools-protocol session on one page (commands and collected events)."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        for msg in self.events:
            if msg.get("method") == method:
                return msg
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise TimeoutError(method)

    def evaluate(self, expression: str):
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return res.get("result", {}).get("value")

    def errors(self) -> list[str]:
        out = []
        for msg in self.events:
            m, p = msg.get("method"), msg.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                desc = d.get("exception", {}).get("description")
                out.append(f"exception: {d.get('text')} {desc}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                        for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                out.append(f"log error ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
        return out

    def close(self) -> None:
        self.ws.close()


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 60.0) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode}: "
                               f"{proc.stderr.read().decode(errors='replace')[-2000:]}")
        if marker.exists():
            lines = marker.read_text().split()
            if lines:
                return int(lines[0])
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


def _page_ws(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as resp:
        targets = json.loads(resp.read())
    pages = [t for t in targets if t.get("type") == "page"]
    if not pages:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank",
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=30) as resp:
            pages = [json.loads(resp.read())]
    return pages[0]["webSocketDebuggerUrl"]


def _fits_width(tools: DevTools, width: int) -> bool:
    """Whether the page needs no horizontal scrollbar in a window ``width`` pixels wide (wide
    tables scroll inside themselves; long addresses wrap)."""
    tools.send("Emulation.setDeviceMetricsOverride",
               {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    try:
        time.sleep(1.0)  # responsive charts redraw on the resize
        return tools.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        tools.send("Emulation.clearDeviceMetricsOverride")


@pytest.fixture
def chromium(tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium found (install Debian's 'chromium' or set LIQBT_CHROMIUM): "
                    "the report was not checked in a browser")
    pytest.importorskip("websocket", reason="websocket-client (test extra) not installed")
    profile = tmp_path / "profile"
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = _devtools_port(profile, proc)
        tools = DevTools(_page_ws(port))
        yield tools
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def test_governance_report_renders_in_chromium(governance_report, chromium):
    html = governance_report["html"]
    n_charts = html.read_text(encoding="utf-8").count('class="plotly-graph-div"')
    for domain in ("Runtime", "Log", "Page"):
        chromium.send(f"{domain}.enable")
    chromium.send("Page.addScriptToEvaluateOnNewDocument", {
        "source": "window.__alerts = 0; window.alert = () => { window.__alerts += 1; };"})
    chromium.send("Page.navigate", {"url": html.resolve().as_uri()})
    chromium.wait_event("Page.loadEventFired", timeout=120)
    drawn = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        drawn = chromium.evaluate(
            "Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".filter(d => d.querySelector('.plot-container .main-svg')).length")
        if drawn == n_charts:
            break
        time.sleep(0.2)
    traces = chromium.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(d => d.querySelectorAll('.scatterlayer .trace, .heatmaplayer .hm').length)")
    title = chromium.evaluate("document.title")
    shot = chromium.send("Page.captureScreenshot", {"format": "png"})
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "governance-report.png").write_bytes(base64.b64decode(shot["data"]))
    for anchor, name in (("frontier", "governance-report-2.png"),
                         ("grid", "governance-report-3.png"),
                         ("accounts", "governance-report-4.png")):
        chromium.evaluate(f"document.getElementById('{anchor}').scrollIntoView()")
        shot = chromium.send("Page.captureScreenshot", {"format": "png"})
        (ARTIFACTS / name).write_bytes(base64.b64decode(shot["data"]))
    errors = chromium.errors()
    assert not errors, "console errors:\n" + "\n".join(errors)
    assert n_charts == 8 and drawn == n_charts, f"{drawn} of {n_charts} charts drawn"
    assert all(t > 0 for t in traces), traces
    assert "<script>" in title  # the hostile proposal name is shown as text
    assert chromium.evaluate("window.__alerts") == 0  # no injected script ran
    assert chromium.evaluate("document.querySelectorAll('#summary-table tbody tr').length") == 7
    assert _fits_width(chromium, 1024)


def test_run_report_renders_in_chromium(report, chromium):  # noqa: F811
    """The run report (compressed plotly.js, deferred figures) draws every chart it holds."""
    out, text, _ = report
    n_charts = text.count('class="plotly-graph-div"')
    for domain in ("Runtime", "Log", "Page"):
        chromium.send(f"{domain}.enable")
    chromium.send("Page.addScriptToEvaluateOnNewDocument", {
        "source": "window.__alerts = 0; window.alert = () => { window.__alerts += 1; };"})
    chromium.send("Page.navigate", {"url": out.resolve().as_uri()})
    chromium.wait_event("Page.loadEventFired", timeout=120)
    drawn = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        drawn = chromium.evaluate(
            "Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".filter(d => d.querySelector('.plot-container .main-svg')).length")
        if drawn == n_charts:
            break
        time.sleep(0.2)
    traces = chromium.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(d => d.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length)")
    ARTIFACTS.mkdir(exist_ok=True)
    for anchor, name in (("charts", "run-report.png"), ("fig-leverage-box", "run-report-2.png")):
        chromium.evaluate(f"document.getElementById('{anchor}').scrollIntoView()")
        shot = chromium.send("Page.captureScreenshot", {"format": "png"})
        (ARTIFACTS / name).write_bytes(base64.b64decode(shot["data"]))
    errors = chromium.errors()
    assert not errors, "console errors:\n" + "\n".join(errors)
    assert n_charts >= 6 and drawn == n_charts, f"{drawn} of {n_charts} charts drawn"
    assert all(t > 0 for t in traces), traces
    assert chromium.evaluate("window.__alerts") == 0
    assert _fits_width(chromium, 1024)
