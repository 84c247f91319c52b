"""The report's main table in the paper style (:mod:`rdmeval.results.paper`): one number per cell,
footnotes in the table's foot, so it fits a 1280 px window without horizontal scrolling."""

from __future__ import annotations

from html import escape

from rdmeval.results.paper import paper_view
from rdmeval.results.saved import TABLE_PAPER
from rdmeval.results.table import OK, SHOWN, ResultsTable


#: The paper table's files in the report folder (the names ``reproduce`` saves them under): (name, format).
PAPER_TABLES: tuple[tuple[str, str], ...] = TABLE_PAPER
PAPER_FILES: tuple[str, ...] = tuple(name for name, _ in PAPER_TABLES)


def _marks(marks: tuple[str, ...]) -> str:
    return f'<sup class="fn">{escape(",".join(marks))}</sup>' if marks else ""


def _heading(label: str) -> str:
    """A column heading that wraps at spaces, not inside a short hyphenated name ("Pick-a-Pic" keeps
    together); a long one ("[demo-captions]") may still break at its hyphen, so narrow windows fit."""
    return " ".join(escape(w).replace("-", "&#8209;") if len(w) <= 12 else escape(w) for w in label.split(" "))


def _number(text: str) -> str:
    """A value and its interval; a narrow window may break the line between them, never inside either."""
    for sep in (" ± ", " ["):
        value, found, rest = text.partition(sep)
        if found:
            return f'{escape(value)} <span class="ci">{escape(found.strip() + (" " if sep == " ± " else "") + rest)}</span>'
    return escape(text)


def paper_table_html(table: ResultsTable, ci: str = "pm") -> str:
    """The ``main`` section as a paper table (``data-section="main"``), its footnotes in ``<tfoot>``."""
    p = paper_view(table, ci=ci)
    n_cols = len(p.columns) + 1
    out = ['<div class="table-wrap"><table class="results paper" data-section="main">',
           f"<caption>{escape(p.title)}</caption>", "<thead><tr>", f'<th scope="col">{escape(p.stub)}</th>']
    out += [f'<th scope="col" class="{c.kind}">{_heading(c.label)}{_marks(c.marks)}</th>' for c in p.columns]
    out.append("</tr></thead><tbody>")
    for label, cells in p.rows:
        out.append(f'<tr><th scope="row">{escape(label)}</th>')
        for c in cells:
            classes = [c.kind]
            if c.kind in ("value", "task") and c.text == "—":
                classes.append("why")
            elif c.kind in ("value", "task") and c.status in SHOWN and c.status != OK:
                classes.append("subset")
            if c.kind == "delta" and c.delta is not None:
                classes.append("pos" if c.delta > 0 else "neg" if c.delta < 0 else "zero")
            title = f' title="{escape(c.run, quote=True)}"' if c.run else ""
            out.append(f'<td class="{" ".join(classes)}"{title}>{_number(c.text)}{_marks(c.marks)}</td>')
        out.append("</tr>")
    out.append("</tbody>")
    if p.footnotes:
        out.append("<tfoot>" + "".join(f'<tr><td colspan="{n_cols}"><sup class="fn">{escape(m)}</sup> {escape(t)}</td></tr>'
                                       for m, t in p.footnotes) + "</tfoot>")
    out.append("</table></div>")
    out.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in p.notes) + "</ul>")
    return "\n".join(out)


PAPER_CSS = """\
table.paper th, table.paper td { padding: 4px 8px; }
table.paper th[scope=row] { white-space: normal; min-width: 150px; max-width: 230px; }
table.paper thead th { max-width: 120px; }
table.paper td.value, table.paper td.task { white-space: normal; }
table.paper span.ci { white-space: nowrap; }
table.paper sup.fn { font-size: 10px; color: var(--muted); margin-left: 1px; }
table.paper tfoot td { text-align: left; white-space: normal; color: var(--muted); font-size: 12.5px; border-bottom: none; padding: 1px 10px; }
table.paper td.published { color: #444; }
"""
