"""HTML building blocks of the report: escaping, tables, images, sections and the page.

Safety rule: text reaches the page only through :func:`esc` (element text and attribute values)
or :func:`json_script` (data for the tables, with ``<``, ``>`` and ``&`` written as JSON escapes
so that no string can close the ``<script>`` element). Corpus text and labels are never
concatenated into markup unescaped. The page also carries a Content-Security-Policy that allows
only its own scripts (by hash) and ``data:`` images, so it makes no network request even if
opened on a machine that has one.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

from moelens.report import assets


def esc(value: Any) -> str:
    """Text for an element or a quoted attribute value."""
    return html.escape("" if value is None else str(value), quote=True)


def json_script(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def slug(*parts: Any) -> str:
    """An element id made of letters, digits and dashes (stable for the same parts)."""
    raw = "-".join(str(p) for p in parts)
    clean = re.sub(r"[^A-Za-z0-9]+", "-", raw).strip("-").lower() or "x"
    if clean != raw.lower():  # different raw names must not share an id
        clean += "-" + hashlib.sha1(raw.encode()).hexdigest()[:6]
    return clean


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell: fixed digits for floats, '–' for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


@dataclass
class Link:
    """A table cell that links somewhere in the page (an expert card)."""

    text: str
    href: str


@dataclass
class Table:
    """A sortable, searchable table: rendered as plain HTML and upgraded by Grid.js."""

    id: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    page_size: int = 20
    """rows shown before the table scrolls under its fixed header"""

    def spec(self) -> dict[str, Any]:
        def cell(v: Any) -> Any:
            if isinstance(v, Link):
                return {"text": v.text, "href": v.href}
            if isinstance(v, float):
                return None if v != v else round(v, 4)
            return v
        return {"columns": self.columns, "rows": [[cell(v) for v in r] for r in self.rows],
                "page_size": self.page_size}

    def render(self) -> str:
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{_cell_html(v)}</td>" for v in r) + "</tr>"
                       for r in self.rows)
        caption = f'<p class="caption">{esc(self.caption)}</p>' if self.caption else ""
        return (f'<div class="table" id="{esc(self.id)}" data-table="{esc(self.id)}">'
                f'<table class="static"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                f'</table></div>{caption}'
                f'<script type="application/json" id="{esc(self.id)}-data">'
                f"{json_script(self.spec())}</script>")


def _cell_html(v: Any) -> str:
    if isinstance(v, Link):
        return f'<a href="{esc(v.href)}">{esc(v.text)}</a>'
    return esc(fmt(v))


@dataclass
class Figure:
    """An image embedded as a data URI, with its caption."""

    uri: str
    caption: str
    alt: str = ""

    def render(self) -> str:
        return (f'<figure><img src="{esc(self.uri)}" alt="{esc(self.alt or self.caption)}">'
                f"<figcaption>{esc(self.caption)}</figcaption></figure>")


@dataclass
class Section:
    """One part of the report; ``body`` is already-escaped HTML, or ``not_run`` says why not."""

    id: str
    title: str
    body: str = ""
    not_run: str = ""
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        if self.not_run:
            inner = f'<p class="not-run"><strong>not run</strong>: {esc(self.not_run)}</p>'
        else:
            inner = "".join(f'<p class="note">{esc(n)}</p>' for n in self.notes) + self.body
        return f'<section id="{esc(self.id)}"><h2>{esc(self.title)}</h2>{inner}</section>'


def paragraph(text: str, cls: str = "") -> str:
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<p{attr}>{esc(text)}</p>"


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole self-contained document."""
    scripts = [assets.vendored("gridjs.umd.js"), assets.template("report.js")]
    css = assets.vendored("mermaid.min.css") + "\n" + assets.template("report.css")
    policy = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
              "script-src " + " ".join(f"'sha256-{_sha256_b64(s)}'" for s in scripts))
    off = ' class="off"'
    nav = "".join(f'<a href="#{esc(s.id)}"{off if s.not_run else ""}>{esc(s.title)}</a>'
                  for s in sections)
    return assets.template("page.html").format(
        policy=esc(policy), title=esc(title), subtitle=esc(subtitle), css=css, nav=nav,
        sections="\n".join(s.render() for s in sections),
        scripts="".join(f"<script>{s}</script>" for s in scripts),
        gridjs_version=esc(assets.GRIDJS_VERSION))
