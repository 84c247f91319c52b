"""The HTML report: files and links, atomic replacement, drawn boxes, and a real headless browser.

The browser test serves the report of a smoke run root on 127.0.0.1 and drives Debian's chromium
over the DevTools protocol (``--remote-debugging-pipe``): it records console messages, exceptions,
failed loads and every requested URL, checks in the page that the table, the charts and the gallery
rendered (every image decoded, the task filter working), and saves a full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rdmeval.cli.main import main
from rdmeval.errors import RdmevalError
from rdmeval.report import build_report
from rdmeval.report.gallery import class_color, render_thumbnail
from _runroot import add_heldout_runs, make_card_root, make_suite_layout_root, shared_smoke_root  # the table tests' run roots

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    return shared_smoke_root(tmp_path_factory)


@pytest.fixture(scope="module")
def report_dir(smoke_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report"
    result = build_report(smoke_root, out, thumb_size=128, n_resamples=200)
    assert result.n_prompts == 6 and result.n_images == 6 * 4 * 3
    return out


@pytest.fixture(scope="module")
def wide_report_dir(smoke_root, tmp_path_factory) -> Path:
    """The widest main table the card's layout makes: every card column with a published value and a
    delta, two benchmarks outside the card, four models (the card root's rows and the smoke root's demo runs)."""
    root = make_card_root(tmp_path_factory.mktemp("wide") / "root")
    for m in ("teacher", "naive", "student"):
        for bench in ("demo-geneval", "demo-captions"):
            shutil.copytree(smoke_root / "runs" / m / bench, root / "runs" / m / bench)
    out = root.parent / "report"
    build_report(root, out, gallery=False, n_resamples=50)
    return out


@pytest.fixture(scope="module")
def heldout_root(smoke_root, tmp_path_factory) -> Path:
    """The suite layout of the smoke root plus held-out GenEval runs of the teacher and the student."""
    return add_heldout_runs(make_suite_layout_root(smoke_root, tmp_path_factory.mktemp("heldout") / "root"))


@pytest.fixture(scope="module")
def heldout_report_dir(heldout_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heldout-report") / "report"
    result = build_report(heldout_root, out, thumb_size=128, n_resamples=200)
    assert result.n_prompts == 6 + 5 and result.n_images == 6 * 4 * 3 + 5 * 4 * 2
    return out


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        for key in ("src", "href"):
            if a.get(key):
                self.links.append(a[key])


def test_report_is_self_contained(report_dir):
    html = (report_dir / "index.html").read_text()
    parser = _Links()
    parser.feed(html)
    for link in parser.links:
        if link.startswith("#") or link == "data:,":
            continue
        assert "://" not in link and not link.startswith("/"), link
        assert (report_dir / link).is_file(), link
    for name in ("index.html", "report.css", "report.js"):
        assert "http://" not in (report_dir / name).read_text() and "https://" not in (report_dir / name).read_text()
    for name in ("table.md", "table.csv", "table.json", "table.tex", "table-paper.md", "table-paper.tex"):
        assert (report_dir / name).stat().st_size > 0
    # gallery: failures first, and every image of every model
    articles = [a for t, a in parser.tags if t == "article"]
    failed = [int(a["data-failed"]) for a in articles]
    assert len(articles) == 6 and failed == sorted(failed, reverse=True)
    assert len(list((report_dir / "img").rglob("*.jpg"))) == 72
    assert sum(1 for t, a in parser.tags if t == "img" and a["src"].startswith("charts/")) == 2


def test_the_gap_chart_is_drawn_only_with_heldout_runs(report_dir, heldout_report_dir):
    assert not (report_dir / "charts" / "heldout-gap.png").exists()
    assert "In-distribution gap" not in (report_dir / "index.html").read_text()
    html = (heldout_report_dir / "index.html").read_text()
    parser = _Links()
    parser.feed(html)
    charts = [a["src"] for t, a in parser.tags if t == "img" and a["src"].startswith("charts/")]
    assert "charts/heldout-gap.png" in charts and len(charts) == 5  # + GenEval per task on both sets, gap
    assert 'alt="In-distribution gap: GenEval vs held-out GenEval"' in html
    assert "Not held out (GenEval only): single_object." in html
    with Image.open(heldout_report_dir / "charts" / "heldout-gap.png") as im:
        assert im.size[0] > 1000 and im.size[1] > 300


def test_the_gap_chart_shows_the_numbers_of_the_gap(heldout_root, tmp_path, monkeypatch):
    """What the chart is given: each model's accuracy per task recomputed from the judge's per-image
    verdicts (results.jsonl), and the paired differences and gap of heldout_gap on the same files."""
    import pandas as pd

    import rdmeval.report.build as build
    from rdmeval.results.heldout_gap import heldout_gap
    from rdmeval.results.paired import read_geneval_images

    drawn = {}
    real = build.heldout_chart

    def spy(title, categories, models, accuracy, differences, **kw):
        drawn.update(categories=list(categories), models=list(models), accuracy=dict(accuracy), differences=dict(differences))
        return real(title, categories, models, accuracy, differences, **kw)

    monkeypatch.setattr(build, "heldout_chart", spy)
    build_report(heldout_root, tmp_path / "rep", gallery=False, n_resamples=300, seed=4)
    runs = {(m, which): heldout_root / "runs" / m / bench for m in ("teacher", "student")
            for which, bench in (("geneval", "geneval"), ("heldout", "geneval-heldout"))}
    assert drawn["models"] == ["teacher", "student"]
    assert drawn["categories"] == ["single_object", "two_object", "counting", "colors", "position", "color_attr", "overall"]
    for (m, which), run in runs.items():
        tasks = pd.read_json(run / "scores" / "geneval" / "results.jsonl", lines=True).groupby("tag")["correct"].mean()
        for task in drawn["categories"][:-1]:
            got = drawn["accuracy"][(task, m, which)]
            assert got is None if task not in tasks else got == pytest.approx(tasks[task], abs=1e-12), (m, which, task)
        held = [t for t in tasks.index if t != "single_object"]
        assert drawn["accuracy"][("overall", m, which)] == pytest.approx(tasks[held].mean(), abs=1e-12)  # held-out tasks only
    images = {k: read_geneval_images(run / "scores" / "geneval") for k, run in runs.items()}
    rows = heldout_gap(images[("teacher", "geneval")], images[("student", "geneval")], images[("teacher", "heldout")],
                       images[("student", "heldout")], n_resamples=300, seed=4)
    for r in rows:
        for key, value, ci in (("geneval", r.diff_geneval, r.diff_geneval_ci), ("heldout", r.diff_heldout, r.diff_heldout_ci),
                               ("gap", r.gap, r.gap_ci)):
            bar = drawn["differences"][(r.category, key)]
            assert (bar.value, (bar.low, bar.high) if bar.value is not None else None) == (value, ci), (r.category, key)
    assert drawn["differences"][("single_object", "gap")].value is None


def test_thumbnail_draws_the_kept_boxes(tmp_path):
    src = tmp_path / "white.png"
    Image.new("RGB", (100, 100), "white").save(src)
    render_thumbnail(src, tmp_path / "t.png", {"dog": [[20.0, 20.0, 80.0, 80.0, 0.91]]}, size=200)
    thumb = np.asarray(Image.open(tmp_path / "t.png").convert("RGB")).astype(int)
    assert thumb.shape == (200, 200, 3)
    want = np.array([int(class_color("dog")[i : i + 2], 16) for i in (1, 3, 5)])
    assert np.abs(thumb[120, 40] - want).max() < 2  # left edge of the box, scaled x2
    assert np.abs(thumb[159, 100] - want).max() < 2  # bottom edge (the line is drawn inward)
    assert (thumb[100, 100] > 235).all() and (thumb[5, 190] > 235).all()  # inside and outside stay white


def test_report_replaces_atomically_and_refuses_foreign_folders(smoke_root, tmp_path, monkeypatch):
    out = tmp_path / "r"
    build_report(smoke_root, out, gallery=False, n_resamples=50)
    first = (out / "index.html").read_text()
    assert "Gallery left out" in first

    import rdmeval.report.build as build

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "write_thumbnails", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(smoke_root, out, n_resamples=50)
    assert (out / "index.html").read_text() == first  # the previous report is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # and no temporary folder is left

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(RdmevalError, match="not an rdmeval report"):
        build_report(smoke_root, foreign)
    assert (foreign / "mine.txt").read_text() == "keep"


def test_report_of_the_suite_layout(smoke_root, tmp_path):
    root = make_suite_layout_root(smoke_root, tmp_path / "suite")
    result = build_report(root, tmp_path / "rep", thumb_size=64, max_prompts=2, n_resamples=50)
    html = (tmp_path / "rep" / "index.html").read_text()
    assert result.n_prompts == 2 and "geneval (demo-geneval prompts): 2 prompts" in html
    assert result.n_figures == 3  # GenEval per task, and PickScore for coco-val and pickapic-test
    assert "(on demo-captions, not pickapic-test)" in html


def test_cli_report(smoke_root, tmp_path, capsys):
    assert main(["report", str(smoke_root), "--out", str(tmp_path / "rep"), "--thumb-size", "64", "--max-prompts", "2",
                 "--n-resamples", "50"]) == 0
    assert "gallery of 2 prompts" in capsys.readouterr().out
    assert main(["report", str(smoke_root), "--out", str(tmp_path / "rep2"), "--thumb-size", "5"]) == 2
    assert "--thumb-size" in capsys.readouterr().err


def test_report_shows_the_saved_table_and_recomputes_only_when_asked(smoke_root, tmp_path, capsys):
    """The report reads RUN_ROOT/table.json (what reproduce saved): a doctored value there is what the
    report shows, in its page and in its table files; --recompute (or no table.json) rebuilds it."""
    from rdmeval.results.table import ResultsTable, build_table, save_table
    from rdmeval.results.table_render import md_escape

    root = make_suite_layout_root(smoke_root, tmp_path / "root")
    save_table(build_table(root, n_resamples=50), root)
    assert (root / "table.md").read_text() == ResultsTable.from_json((root / "table.json").read_text()).render("md")
    saved = json.loads((root / "table.json").read_text())
    main_section = next(s for s in saved["sections"] if s["key"] == "main")
    cell = next(c for c in main_section["cells"] if c["row"] == "student" and c["col"] == "geneval")
    assert cell["value"] is not None and cell["status"] == "stand-in"  # a shown number (demo prompts stand in)
    cell["value"], cell["ci_low"], cell["ci_high"] = 0.123456, 0.1111, 0.1357
    (root / "table.json").write_text(json.dumps(saved))
    doctored = "0.1235 [0.1111, 0.1357]"  # the full table (table.md)
    doctored_page = "0.1235 ± 0.0123"  # the page's paper table: half the width of [0.1111, 0.1357]
    page_text = lambda: re.sub(r"<[^>]+>", "", (tmp_path / "rep" / "index.html").read_text())  # noqa: E731  (markup out)

    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-gallery"]) == 0
    printed = capsys.readouterr().out
    assert f"table read from {root / 'table.json'}" in printed
    assert "no gallery (--no-gallery)" in printed and "gallery of" not in printed
    assert doctored_page in page_text()
    assert md_escape(doctored) in (tmp_path / "rep" / "table.md").read_text()
    assert doctored_page in (tmp_path / "rep" / "table-paper.md").read_text()
    shown = ResultsTable.from_json((tmp_path / "rep" / "table.json").read_text())
    assert shown == ResultsTable.from_json((root / "table.json").read_text())  # the report's table is the saved one

    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-gallery", "--recompute", "--n-resamples", "50"]) == 0
    assert "table computed from the result rows (--recompute)" in capsys.readouterr().out
    assert doctored_page not in page_text()
    assert ResultsTable.from_json((tmp_path / "rep" / "table.json").read_text()) == build_table(root, n_resamples=50)

    (root / "table.json").unlink()
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-gallery", "--n-resamples", "50"]) == 0
    assert "computed from the result rows (no table.json in" in capsys.readouterr().out


def test_report_warns_when_rows_are_newer_than_the_saved_table(smoke_root, tmp_path):
    from rdmeval.results.table import build_table, save_table

    root = make_suite_layout_root(smoke_root, tmp_path / "root")
    save_table(build_table(root, n_resamples=50), root)
    assert "WARNING" not in build_report(root, tmp_path / "a", gallery=False).table_source
    os.utime(root / "table.json", (1_000_000_000, 1_000_000_000))  # saved in 2001: every row is newer
    assert "result rows are newer than it" in build_report(root, tmp_path / "b", gallery=False).table_source


# ----------------------------------------------------------------------------- the browser


class Chromium:
    """Headless chromium driven over ``--remote-debugging-pipe`` (it reads fd 3, writes fd 4; NUL-separated JSON)."""

    def __init__(self, exe: str, user_data_dir: Path) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._ev_r, ev_w = os.pipe()
        # the child's ends go above fd 9, so that the shell's "3<&N 4>&M" cannot overwrite one with the other
        child = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (cmd_r, ev_w)]
        os.close(cmd_r), os.close(ev_w)
        argv = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$@" 3<&{child[0]} 4>&{child[1]} {child[0]}<&- {child[1]}>&-', "bash", *argv],
            pass_fds=tuple(child), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for fd in child:
            os.close(fd)
        self.events: list[dict] = []
        self._responses: dict[int, dict] = {}
        self._next = 0
        self._cv = threading.Condition()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()

    def _read_events(self) -> None:
        buf = b""
        with os.fdopen(self._ev_r, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buf += chunk
                *messages, buf = buf.split(b"\0")
                with self._cv:
                    for raw in messages:
                        msg = json.loads(raw)
                        (self._responses.__setitem__(msg["id"], msg) if "id" in msg else self.events.append(msg))
                    self._cv.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next += 1
        ident = self._next
        msg = {"id": ident, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cv:
            while ident not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    stderr = b"".join(self._stderr[-30:]).decode(errors="replace")
                    raise AssertionError(f"chromium gave no answer to {method}; its stderr:\n{stderr}")
                self._cv.wait(min(left, 0.5))
            resp = self._responses.pop(ident)
        if "error" in resp:
            raise AssertionError(f"{method} failed: {resp['error']}")
        return resp.get("result", {})

    def count_events(self, method: str, session: str) -> int:
        with self._cv:
            return sum(1 for e in self.events if e.get("method") == method and e.get("sessionId") == session)

    def wait_event(self, method: str, session: str, timeout: float = 30, after: int = 0) -> dict:
        """The first ``method`` event of ``session`` after the first ``after`` ones."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                found = [e for e in self.events if e.get("method") == method and e.get("sessionId") == session]
                if len(found) > after:
                    return found[after]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {method} within {timeout}s")
                self._cv.wait(min(left, 0.5))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        msg = "chromium is not installed (apt-get install -y chromium); the report's browser test needs it"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


@contextlib.contextmanager
def _serve(directory: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def served(heldout_report_dir):
    with _serve(heldout_report_dir) as url:
        yield url


# Runs in the page once it has loaded: force every lazy image to load, wait for all, then report
# what rendered and exercise the gallery filter.
PAGE_CHECK = """
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(img => { img.loading = "eager"; });
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done); })));
  const g = document.querySelector(".gallery");
  const visible = () => Array.from(g.querySelectorAll("article.prompt")).filter(a => !a.hidden).length;
  const out = {
    title: document.title,
    tables: Array.from(document.querySelectorAll("table.results")).map(t => t.dataset.section),
    mainRows: document.querySelectorAll('table[data-section="main"] tbody tr').length,
    mainText: document.querySelector('table[data-section="main"]').innerText,
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")),
    charts: Array.from(document.querySelectorAll("figure.chart img")).map(i => [i.naturalWidth, i.naturalHeight]),
    chartAlts: Array.from(document.querySelectorAll("figure.chart img")).map(i => i.alt),
    gapText: (document.querySelector('table[data-section="heldout"]') || {}).innerText || "",
    articles: visible(),
    count0: g.querySelector(".count").textContent,
  };
  g.querySelector('button[data-task="counting"]').click();
  out.counting = visible();
  out.countingTags = Array.from(g.querySelectorAll("article.prompt")).filter(a => !a.hidden).map(a => a.dataset.task);
  g.querySelector('button[data-task="all"]').click();
  const box = g.querySelector("input.failures-only");
  box.checked = true; box.dispatchEvent(new Event("change"));
  out.failuresOnly = visible();
  out.withFailures = Array.from(g.querySelectorAll("article.prompt")).filter(a => Number(a.dataset.failed) > 0).length;
  box.checked = false; box.dispatchEvent(new Event("change"));
  return JSON.stringify(Object.assign(out, eval(WIDTHS)));
})()
"""

# The main table's width against the window: the table, the box that would scroll it, the document.
WIDTHS = """
(() => {
  const t = document.querySelector('table[data-section="main"]');
  return {tableWidth: t.scrollWidth, wrapScroll: t.parentElement.scrollWidth, wrapClient: t.parentElement.clientWidth,
          docWidth: document.documentElement.scrollWidth, winWidth: window.innerWidth};
})()
"""
PAGE_CHECK = PAGE_CHECK.replace("eval(WIDTHS)", WIDTHS.strip())



def _assert_main_table_fits(page: dict) -> None:
    """No horizontal scrolling at 1280 px: neither the main table's box nor the page scrolls sideways."""
    assert page["winWidth"] == 1280
    assert page["tableWidth"] <= page["wrapClient"] and page["wrapScroll"] <= page["wrapClient"], page
    assert page["docWidth"] <= page["winWidth"], page


def test_report_renders_in_headless_chromium(served, wide_report_dir, tmp_path):
    """The report of a run root with held-out runs: the table (gap section included), every chart (the
    gap chart included) and the gallery render, nothing is fetched from elsewhere, no console error;
    the main table fits a 1280 px window, and so does the widest card table."""
    exe = _chromium()
    browser = Chromium(exe, tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1,
                                                            "mobile": False}, session=session)
        browser.send("Page.navigate", {"url": f"{served}/index.html"}, session=session)
        browser.wait_event("Page.loadEventFired", session)
        result = browser.send("Runtime.evaluate", {"expression": PAGE_CHECK, "awaitPromise": True, "returnByValue": True},
                              session=session, timeout=60)
        assert "exceptionDetails" not in result, result
        page = json.loads(result["result"]["value"])

        metrics = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        height = int(min(metrics["height"], 12000))
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                       "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}},
                            session=session, timeout=60)
        (tmp_path / "report.png").write_bytes(base64.b64decode(shot["data"]))
        events = list(browser.events)

        # the widest card table (every published value and delta, two more benchmarks) fits at 1280 px too
        with _serve(wide_report_dir) as wide_url:
            loads = browser.count_events("Page.loadEventFired", session)
            browser.send("Page.navigate", {"url": f"{wide_url}/index.html"}, session=session)
            browser.wait_event("Page.loadEventFired", session, after=loads)
            wide = browser.send("Runtime.evaluate", {"expression": WIDTHS, "returnByValue": True}, session=session)
            wide_header = browser.send("Runtime.evaluate", {"expression": "Array.from(document.querySelectorAll("
                                       "'table[data-section=\"main\"] thead th')).map(th => th.textContent)", "returnByValue": True},
                                       session=session)["result"]["value"]
    finally:
        browser.close()

    problems = [e["params"] for e in events if e["method"] in ("Runtime.exceptionThrown", "Network.loadingFailed")]
    problems += [e["params"] for e in events if e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "warning", "assert")]
    problems += [e["params"]["entry"] for e in events if e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning")]
    assert not problems, problems
    hosts = {e["params"]["request"]["url"].split("/")[2] for e in events
             if e["method"] == "Network.requestWillBeSent" and not e["params"]["request"]["url"].startswith("data:")}
    assert hosts == {served.split("/")[2]}  # nothing fetched from anywhere else

    assert page["title"] == "rdmeval report"
    assert page["tables"][0] == "main" and {"tasks:geneval", "paired", "heldout", "protocol"} <= set(page["tables"])
    assert page["mainRows"] == 3 and "not run" in page["mainText"] and "0.8258" in page["mainText"]
    assert "not held out" in page["gapText"] and "color_attr" in page["gapText"]
    assert page["broken"] == [] and page["images"] == 72 + 40 + 5
    assert len(page["charts"]) == 5 and all(w > 300 and h > 200 for w, h in page["charts"])
    assert "In-distribution gap: GenEval vs held-out GenEval" in page["chartAlts"]
    assert page["articles"] == 6 and page["count0"] == "6 of 6 prompts shown"
    assert page["counting"] == 1 and page["countingTags"] == ["counting"]
    assert page["failuresOnly"] == page["withFailures"] >= 1
    _assert_main_table_fits(page)
    assert wide_header.count("Δ") == 3 and len(wide_header) == 1 + 3 * 3 + 2, wide_header  # model, 3 x (value, card, Δ), 2 more
    _assert_main_table_fits(wide["result"]["value"])

    shot = Image.open(tmp_path / "report.png")
    assert shot.size == (1280, height) and height > 2000
    assert len(np.unique(np.asarray(shot.convert("L"))[::7, ::7])) > 50  # not a blank page
