"""The table's renderers: JSON and CSV (both read back into an equal table), Markdown and LaTeX.

Every renderer prints the same display strings (:meth:`Section.body`, :meth:`Cell.shown`); Markdown
and LaTeX escape them for their format. Markdown and LaTeX come in two styles: ``full`` (every
section, every sub-column) and ``paper`` (the card's layout, one number per cell, footnotes:
:mod:`rdmeval.results.paper`). CSV and JSON always hold the full table.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from typing import Any

from rdmeval.errors import RdmevalError
from rdmeval.provenance import shown_path
from rdmeval.results.table_model import (
    TABLE_FORMAT,
    TABLE_VERSION,
    Cell,
    ResultsTable,
    _section_from_meta,
    _section_meta,
)

# ----------------------------------------------------------------------------- JSON


def to_dict(table: ResultsTable) -> dict[str, Any]:
    return {
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "run_root": table.run_root,
        "published_version": table.published_version,
        "sections": [
            {"key": s.key, **_section_meta(s),
             "cells": [{"row": r, "col": c, **asdict(s.cells[(r, c)])} for r in s.row_keys for c in s.col_keys]}
            for s in table.sections
        ],
    }


def to_json(table: ResultsTable) -> str:
    return json.dumps(to_dict(table), indent=2, ensure_ascii=False) + "\n"


def from_dict(d: dict[str, Any]) -> ResultsTable:
    if d.get("format") != TABLE_FORMAT or d.get("version") != TABLE_VERSION:
        raise RdmevalError(f"not an {TABLE_FORMAT} v{TABLE_VERSION} document (format={d.get('format')!r}, version={d.get('version')!r})")
    names = {f.name for f in fields(Cell)}
    sections = [
        _section_from_meta(s["key"], s, {(c["row"], c["col"]): Cell(**{k: v for k, v in c.items() if k in names})
                                         for c in s["cells"]})
        for s in d["sections"]
    ]
    return ResultsTable(run_root=d["run_root"], published_version=d["published_version"], sections=sections)


def from_json(text: str) -> ResultsTable:
    try:
        return from_dict(json.loads(text))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RdmevalError(f"cannot read the table JSON: {exc}") from None


# ----------------------------------------------------------------------------- CSV: one line per cell (long format), plus one line per section and one for the table


def to_csv(table: ResultsTable) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(ResultsTable.CSV_FIELDS), lineterminator="\n")
    w.writeheader()
    w.writerow({"kind": "table", "label": json.dumps({"run_root": table.run_root, "published_version": table.published_version,
                                                     "format": TABLE_FORMAT, "version": TABLE_VERSION})})
    for s in table.sections:
        w.writerow({"kind": "section", "section": s.key, "label": json.dumps(_section_meta(s), ensure_ascii=False)})
        for r, rl in zip(s.row_keys, s.row_labels):
            for c in s.col_keys:
                cell = s.cells[(r, c)]
                line: dict[str, Any] = {"kind": "cell", "section": s.key, "row": r, "col": c, "label": rl, "shown": cell.shown()}
                for f in fields(Cell):
                    v = getattr(cell, f.name)
                    line[f.name] = json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else ("" if v is None else repr(v) if isinstance(v, float) else v)
                w.writerow(line)
    return buf.getvalue()


def from_csv(text: str) -> ResultsTable:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or list(reader.fieldnames) != list(ResultsTable.CSV_FIELDS):
        raise RdmevalError(f"not an rdmeval table CSV: expected the columns {', '.join(ResultsTable.CSV_FIELDS)}")
    table_meta: dict[str, Any] | None = None
    sections: dict[str, dict[str, Any]] = {}
    kinds = {f.name: f.type for f in fields(Cell)}
    for line in reader:
        if line["kind"] == "table":
            table_meta = json.loads(line["label"])
        elif line["kind"] == "section":
            sections[line["section"]] = {**json.loads(line["label"]), "cells": {}}
        elif line["kind"] == "cell":
            values: dict[str, Any] = {}
            for name, typ in kinds.items():
                raw = line[name]
                if "dict" in str(typ):
                    values[name] = json.loads(raw) if raw else {}
                elif "float" in str(typ):
                    values[name] = float(raw) if raw != "" else None
                elif "int" in str(typ) and "str" not in str(typ):
                    values[name] = int(raw) if raw != "" else None
                elif "bool" in str(typ):
                    values[name] = raw == "True"
                else:
                    values[name] = raw
            sections[line["section"]]["cells"][(line["row"], line["col"])] = Cell(**values)
        else:
            raise RdmevalError(f"unknown line kind {line['kind']!r} in the table CSV")
    if table_meta is None:
        raise RdmevalError("the table CSV has no 'table' line")
    out = [_section_from_meta(key, s, s["cells"]) for key, s in sections.items()]
    return ResultsTable(run_root=table_meta["run_root"], published_version=table_meta["published_version"], sections=out)


# ----------------------------------------------------------------------------- Markdown


def to_markdown(table: ResultsTable) -> str:
    """GitHub-flavoured Markdown; every text that is not fixed here (model, benchmark and scorer names,
    run paths, settings, notes) is escaped by :func:`md_escape`, so it prints as itself."""
    out = [f"# Results: {md_escape(shown_path(table.run_root))}", "",
           "Reproduced values from the scorers' result rows; published values from results/published.toml "
           f"(version {md_escape(table.published_version)}).", ""]
    for s in table.sections:
        out += [f"## {md_escape(s.title)}", ""]
        if s.row_keys:
            header = s.header()
            out.append("| " + " | ".join(md_escape(h) for h in header) + " |")
            out.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
            for line in s.body():
                out.append("| " + " | ".join(md_escape(x) for x in line) + " |")
            out.append("")
        out += [f"- {md_escape(n)}" for n in s.notes]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


#: Characters with a meaning in Markdown text or a GFM table cell: a backslash before any of them
#: prints the character itself (CommonMark backslash escapes), and the rendered table reads the same.
_MD_SPECIAL = frozenset("\\`*_[]<>|~&")


def md_escape(text: str) -> str:
    """``text`` as literal Markdown inline text on one line (emphasis, links, HTML, cell bars escaped)."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else " " if ch in "\r\n" else ch for ch in str(text))


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"$\sim$", "^": r"\textasciicircum{}", "Δ": r"$\Delta$", "≈": r"$\approx$",
          "—": "---", "−": "-", "×": r"$\times$", "·": r"$\cdot$", "±": r"$\pm$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def _label(key: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in key)


# ----------------------------------------------------------------------------- LaTeX (booktabs)


def to_latex(table: ResultsTable) -> str:
    out = ["% rdmeval results table; needs \\usepackage{booktabs}",
           f"% run root: {latex_escape(shown_path(table.run_root))}; published numbers v{latex_escape(table.published_version)}", ""]
    for s in table.sections:
        if not s.row_keys:
            continue
        header = s.header()
        out += ["\\begin{table}[t]", "\\centering", "\\small",
                f"\\caption{{{latex_escape(s.title)}}}", f"\\label{{tab:rdmeval-{_label(s.key)}}}",
                "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule",
                " & ".join(latex_escape(h) for h in header) + " \\\\", "\\midrule"]
        out += [" & ".join(latex_escape(x) for x in line) + " \\\\" for line in s.body()]
        out += ["\\bottomrule", "\\end{tabular}"]
        if s.notes:
            out.append("\\par\\smallskip\\footnotesize " + " ".join(latex_escape(n) for n in s.notes))
        out += ["\\end{table}", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- the paper style (Markdown, LaTeX)

#: Superscript letters for footnote marks in Markdown (Unicode has no superscript q).
_SUPERSCRIPT = dict(zip("abcdefghijklmnoprstuvwxyz", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ"))


def _md_marks(marks: tuple[str, ...]) -> str:
    return "".join(_SUPERSCRIPT.get(m, f"^{m}") for m in marks)


def _tex_marks(marks: tuple[str, ...]) -> str:
    return f"\\textsuperscript{{{','.join(marks)}}}" if marks else ""


def to_markdown_paper(table: ResultsTable, ci: str = "pm", tasks: bool = False) -> str:
    """The paper table in GitHub-flavoured Markdown: the table, its footnotes, notes, then the protocol."""
    from rdmeval.results.paper import paper_view

    p = paper_view(table, ci=ci, tasks=tasks)
    header = [md_escape(p.stub)] + [md_escape(c.label) + _md_marks(c.marks) for c in p.columns]
    out = [f"# Results: {md_escape(shown_path(table.run_root))}", "", f"## {md_escape(p.title)}", "",
           "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * len(p.columns)) + "|"]
    for label, cells in p.rows:
        out.append("| " + " | ".join([md_escape(label)] + [md_escape(c.text) + _md_marks(c.marks) for c in cells]) + " |")
    out.append("")
    out += [f"* {_md_marks((m,))} {md_escape(t)}" for m, t in p.footnotes]
    out += [""] + [f"- {md_escape(n)}" for n in p.notes]
    if p.protocol:
        out += ["", "## Protocol and provenance", ""] + [f"- {md_escape(k)}: {md_escape(v)}" for k, v in p.protocol]
    return "\n".join(out).rstrip("\n") + "\n"


def to_latex_paper(table: ResultsTable, ci: str = "pm", tasks: bool = False) -> str:
    """The paper table as one booktabs ``table`` float; footnotes and notes under it, the protocol as comments."""
    from rdmeval.results.paper import paper_view

    p = paper_view(table, ci=ci, tasks=tasks)
    header = [latex_escape(p.stub)] + [latex_escape(c.label) + _tex_marks(c.marks) for c in p.columns]
    out = ["% rdmeval results table (paper style); needs \\usepackage{booktabs}",
           f"% run root: {latex_escape(shown_path(table.run_root))}; published numbers v{latex_escape(table.published_version)}", "",
           "\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{latex_escape(p.title)}}}", "\\label{tab:rdmeval-main}",
           "\\begin{tabular}{l" + "r" * len(p.columns) + "}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
    for label, cells in p.rows:
        out.append(" & ".join([latex_escape(label)] + [latex_escape(c.text) + _tex_marks(c.marks) for c in cells]) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\par\\smallskip\\footnotesize"]
    out += [f"{_tex_marks((m,))}~{latex_escape(t)}\\par" for m, t in p.footnotes]
    out += [latex_escape(n) + "\\par" for n in p.notes]
    out += ["\\end{table}", ""]
    if p.protocol:
        out += ["% Protocol and provenance:"] + [f"% {k}: {v}".replace("\n", " ") for k, v in p.protocol] + [""]
    return "\n".join(out)


RENDERERS = {"md": to_markdown, "csv": to_csv, "latex": to_latex, "json": to_json}
PAPER_RENDERERS = {"md": to_markdown_paper, "latex": to_latex_paper}


def render(table: ResultsTable, fmt: str, style: str = "full", ci: str = "pm", tasks: bool = False) -> str:
    """``table`` as ``fmt``; ``style="paper"`` (md and latex only) with ``ci`` and ``tasks``
    (:func:`rdmeval.results.paper.paper_view`)."""
    if fmt not in RENDERERS:
        raise RdmevalError(f"--format {fmt!r}: choose one of {', '.join(RENDERERS)}")
    if style == "paper":
        if fmt not in PAPER_RENDERERS:
            raise RdmevalError(f"--style paper is for --format md or latex; {fmt} always holds the full table (use --style full)")
        return PAPER_RENDERERS[fmt](table, ci=ci, tasks=tasks)
    if style != "full":
        raise RdmevalError(f"--style {style!r}: choose paper or full")
    return RENDERERS[fmt](table)
