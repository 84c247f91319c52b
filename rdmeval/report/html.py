"""The report's static page: HTML built with escaping, a local stylesheet and a few lines of vanilla JS.

Nothing is fetched from the network: the page links only files inside the report folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Sequence

from rdmeval.provenance import shown_path
from rdmeval.report.gallery import Gallery, GalleryPrompt
from rdmeval.report.paper_html import PAPER_FILES, paper_table_html
from rdmeval.results.table import OK, SHOWN, TEXT, ResultsTable, Section
from rdmeval.standin import STANDIN_NOTE


@dataclass(frozen=True)
class Figure:
    src: str  # relative path inside the report
    title: str
    caption: str


def _attr(text: str) -> str:
    return escape(str(text), quote=True)


def section_table(section: Section) -> str:
    """One table section as an HTML table (the same text as the other renderers, with status classes)."""
    out = [f'<div class="table-wrap"><table class="results" data-section="{_attr(section.key)}">',
           f"<caption>{escape(section.title)}</caption>", "<thead><tr>"]
    out += [f'<th scope="col">{escape(h)}</th>' for h in section.header()]
    out.append("</tr></thead><tbody>")
    for label, parts in section.body_cells():
        out.append(f'<tr><th scope="row">{escape(label)}</th>')
        for kind, text, cell in parts:
            classes = [kind.split(":", 1)[0]]
            if kind == "value" and cell.status not in (*SHOWN, TEXT):
                classes.append("why")
            if kind == "value" and cell.status in SHOWN and cell.status != OK:
                classes.append("subset")
            if kind == "delta" and cell.delta is not None:
                classes.append("pos" if cell.delta > 0 else "neg" if cell.delta < 0 else "zero")
            title = f' title="{_attr(cell.run)}"' if kind == "value" and cell.run else ""
            out.append(f'<td class="{" ".join(classes)}"{title}>{escape(text)}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if section.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in section.notes) + "</ul>")
    return "\n".join(out)


def _prompt_article(p: GalleryPrompt, models: Sequence[str], missing: dict[str, str], thumb_size: int) -> str:
    verdicts = " · ".join(
        f"{escape(m)} {sum(im.correct for im in p.images.get(m, []))}/{len(p.images.get(m, []))}" for m in models if m in p.images
    )
    out = [f'<article class="prompt" data-task="{_attr(p.tag)}" data-failed="{p.n_failed}">',
           f'<header><span class="tag">{escape(p.tag)}</span> <span class="idx">#{p.prompt_index:05d}</span> '
           f'<q>{escape(p.prompt)}</q> <span class="verdicts">{verdicts}</span></header>']
    for m in models:
        ims = p.images.get(m)
        out.append(f'<div class="model-row"><div class="model-name">{escape(m)}</div>')
        if not ims:
            out.append(f'<div class="absent">{escape(missing.get(m, "no image for this prompt"))}</div></div>')
            continue
        for im in ims:
            mark = "✓ correct" if im.correct else "✗ " + (im.reason or "incorrect")
            alt = f"{m}, prompt {p.prompt_index}, sample {im.sample_index}: {'correct' if im.correct else 'incorrect'}"
            out.append(
                f'<figure class="{"ok" if im.correct else "fail"}">'
                f'<img src="{_attr(im.thumb)}" width="{thumb_size}" height="{thumb_size}" loading="lazy" alt="{_attr(alt)}">'
                f"<figcaption>{escape(mark)}</figcaption></figure>"
            )
        out.append("</div>")
    out.append("</article>")
    return "\n".join(out)


def gallery_html(g: Gallery, all_models: Sequence[str], thumb_size: int) -> str:
    models = list(g.models) + [m for m in all_models if m not in g.models and m in g.missing]
    buttons = ['<button type="button" data-task="all" aria-pressed="true">all tasks</button>']
    buttons += [f'<button type="button" data-task="{_attr(t)}" aria-pressed="false">{escape(t)}</button>' for t in g.tags]
    missing = "".join(f"<li>{escape(m)}: {escape(why)}</li>" for m, why in g.missing.items())
    out = [
        f'<section class="gallery" id="gallery-{_attr(g.benchmark)}" data-benchmark="{_attr(g.benchmark)}">',
        f"<h3>{escape(g.benchmark)}{'' if g.prompt_set == g.benchmark else f' ({escape(g.prompt_set)} prompts)'}: "
        f"{len(g.prompts)} prompts, failures first</h3>",
        (f'<p class="why standin">{escape(STANDIN_NOTE)}</p>' if g.standin else ""),
        (f'<ul class="notes">{missing}</ul>' if missing else ""),
        '<div class="controls" role="toolbar">' + "".join(buttons)
        + '<label><input type="checkbox" class="failures-only"> failures only</label>'
        + '<span class="count" aria-live="polite"></span></div>',
        '<div class="prompts">',
    ]
    out += [_prompt_article(p, models, g.missing, thumb_size) for p in g.prompts]
    out += ["</div>", "</section>"]
    return "\n".join(out)


def page(
    table: ResultsTable,
    figures: Sequence[Figure],
    galleries: Sequence[Gallery],
    *,
    title: str,
    generated: str,
    version: str,
    thumb_size: int,
    models: Sequence[str],
    gallery_note: str = "",
) -> str:
    # the card's table in the paper style (it fits a 1280 px window), every other section in full
    tables = "\n".join(paper_table_html(table) if s.key == "main" else section_table(s) for s in table.sections if s.row_keys)
    figs = "\n".join(
        f'<figure class="chart"><img src="{_attr(f.src)}" alt="{_attr(f.title)}"><figcaption>{escape(f.caption)}</figcaption></figure>'
        for f in figures
    ) or '<p class="why">No scored runs to chart.</p>'
    gals = "\n".join(gallery_html(g, models, thumb_size) for g in galleries) or (
        f'<p class="why">{escape(gallery_note or "No GenEval runs with per-image results under this run root.")}</p>'
    )
    downloads = " · ".join(f'<a href="{n}">{n}</a>' for n in ("table.md", "table.csv", "table.json", "table.tex", *PAPER_FILES))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="report.css">
</head>
<body>
<header class="top">
<h1>{escape(title)}</h1>
<p>Run root <code>{escape(shown_path(table.run_root))}</code> · generated {escape(generated)} · rdmeval {escape(version)} ·
published numbers v{escape(table.published_version)}</p>
<nav><a href="#tables">Table</a> <a href="#charts">Charts</a> <a href="#galleries">Gallery</a> · {downloads}</nav>
</header>
<main>
<section id="tables"><h2>Results</h2>
{tables}
</section>
<section id="charts"><h2>Charts</h2>
{figs}
</section>
<section id="galleries"><h2>GenEval gallery</h2>
<p class="lead">Each prompt with every model's images. Boxes: the detections the judge kept (class and score);
a ✗ gives the scorer's reason. Prompts with the most failed images come first.</p>
{gals}
</section>
</main>
<script src="report.js"></script>
</body>
</html>
"""


CSS = """\
:root { --fg: #1d1f21; --muted: #666; --line: #d8dbe0; --ok: #2e7d32; --bad: #c62828; --bg-alt: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
header.top { padding: 16px 24px; border-bottom: 1px solid var(--line); background: var(--bg-alt); }
header.top h1 { margin: 0 0 4px; font-size: 22px; }
header.top p { margin: 0 0 6px; color: var(--muted); }
nav a { margin-right: 12px; }
main { padding: 8px 24px 48px; }
h2 { margin-top: 28px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.table-wrap { overflow-x: auto; margin: 16px 0 4px; }
table.results { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.results caption { text-align: left; font-weight: 600; font-size: 15px; padding: 4px 0; }
table.results th, table.results td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; white-space: nowrap; }
table.results thead th { background: var(--bg-alt); font-weight: 600; white-space: normal; max-width: 140px; vertical-align: bottom; }
table.results th[scope=row], table.results thead th:first-child { text-align: left; font-weight: 500; }
td.why { color: var(--muted); font-style: italic; }
td.subset { color: #8a6d00; }
td.published, td.other { color: #444; }
td.delta.pos { color: var(--ok); }
td.delta.neg { color: var(--bad); }
td.text { text-align: left; white-space: normal; max-width: 420px; }
table.results[data-section=protocol] td { text-align: left; white-space: normal; max-width: 460px; }
ul.notes { color: var(--muted); font-size: 12.5px; margin: 4px 0 12px; padding-left: 18px; }
figure.chart { margin: 16px 0; }
figure.chart img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure.chart figcaption { color: var(--muted); font-size: 12.5px; }
.controls { position: sticky; top: 0; z-index: 2; background: white; padding: 8px 0; border-bottom: 1px solid var(--line); }
.controls button { margin: 2px 4px 2px 0; padding: 3px 10px; border: 1px solid var(--line); border-radius: 12px; background: white; cursor: pointer; }
.controls button[aria-pressed=true] { background: var(--fg); color: white; border-color: var(--fg); }
.controls label { margin-left: 12px; }
.controls .count { margin-left: 12px; color: var(--muted); }
article.prompt { border: 1px solid var(--line); border-radius: 6px; margin: 12px 0; padding: 8px 12px; }
article.prompt > header { margin-bottom: 6px; }
[hidden] { display: none !important; }
.tag { display: inline-block; padding: 0 8px; border-radius: 10px; background: var(--bg-alt); border: 1px solid var(--line); font-size: 12px; }
.idx { color: var(--muted); font-size: 12px; }
.verdicts { float: right; color: var(--muted); font-size: 12.5px; }
.model-row { display: flex; align-items: flex-start; gap: 8px; margin: 6px 0; }
.model-name { width: 70px; flex: none; font-weight: 600; padding-top: 4px; }
.model-row figure { margin: 0; width: 180px; flex: none; }
.model-row img { width: 180px; height: 180px; object-fit: contain; background: #eee; border: 3px solid transparent; display: block; }
.model-row figure.ok img { border-color: var(--ok); }
.model-row figure.fail img { border-color: var(--bad); }
.model-row figcaption { font-size: 12px; white-space: pre-line; }
.model-row figure.ok figcaption { color: var(--ok); }
.model-row figure.fail figcaption { color: var(--bad); }
.absent { color: var(--muted); font-style: italic; padding-top: 4px; }
p.why { color: var(--muted); font-style: italic; }
p.standin { color: #8a4b00; font-style: normal; font-weight: 600; }
"""

JS = """\
// Gallery filters: one task at a time, optionally failures only. No dependencies, no network.
(function () {
  "use strict";
  document.querySelectorAll(".gallery").forEach(function (gallery) {
    var buttons = gallery.querySelectorAll("button[data-task]");
    var failuresOnly = gallery.querySelector("input.failures-only");
    var count = gallery.querySelector(".count");
    var prompts = gallery.querySelectorAll("article.prompt");
    var task = "all";
    function update() {
      var shown = 0;
      prompts.forEach(function (p) {
        var visible = (task === "all" || p.dataset.task === task) &&
          (!failuresOnly.checked || Number(p.dataset.failed) > 0);
        p.hidden = !visible;
        if (visible) { shown += 1; }
      });
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.task === task)); });
      count.textContent = shown + " of " + prompts.length + " prompts shown";
    }
    buttons.forEach(function (b) {
      b.addEventListener("click", function () { task = b.dataset.task; update(); });
    });
    failuresOnly.addEventListener("change", update);
    update();
  });
})();
"""
