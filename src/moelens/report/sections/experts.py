"""The expert browser: one card per (model, layer, expert), filterable by model and layer and
searchable by label, with everything the other sections learned about it.

A card shows the expert's label and scores (auto-interpretation), its top activating windows
with each token shaded by its activation (0-10 of the window's maximum, as the auto-interp
literature normalises), an activation histogram, the tokens its output promotes, its load, and
the concepts it probes best for. Every string on a card is escaped; the search index lives in a
``data-search`` attribute (escaped too) that the page's script compares as plain text.
"""

from __future__ import annotations

import math
from typing import Any

from moelens.report import figures
from moelens.report.html import Section, esc, fmt
from moelens.report.results import Expert, Shared

ID, TITLE = "experts", "Expert browser"


def detect(path, files) -> bool:  # noqa: ARG001 (cards come from the other sections)
    return False


def read(dirs, shared: Shared) -> None:  # noqa: ARG001
    return None


def _level(a: float, top: float) -> int:
    """0-10 strength of one activation relative to the window's maximum."""
    if top <= 0 or not math.isfinite(a) or a <= 0:
        return 0
    return max(0, min(10, math.ceil(10 * a / top)))


def window_html(tokens: list[Any], acts: list[Any]) -> str:
    """Tokens of one window, each shaded by its activation; text escaped."""
    vals = [float(a) if a is not None else 0.0 for a in acts]
    top = max([v for v in vals if math.isfinite(v)] + [0.0])
    out = []
    for tok, a in zip(tokens, vals):
        lvl = _level(a, top)
        cls = f"tok a{lvl}" if lvl else "tok"
        title = f' title="{a:.3g}"' if lvl else ""
        out.append(f'<span class="{cls}"{title}>{esc(tok)}</span>')
    return f'<div class="window">{"".join(out)}</div>'


def _search_text(e: Expert) -> str:
    words = [e.model, f"layer {e.layer}", f"expert {e.expert}", e.label or ""]
    words += [c for c, _ in e.concepts] + list(e.promoted)
    return " ".join(words).lower()


def card(e: Expert, shared: Shared) -> str:
    anchor = shared.expert_href(e.model, e.layer, e.expert)[1:]
    if e.label:
        label = f'<p class="label">{esc(e.label)}</p>'
    else:
        label = '<p class="label missing">no label (auto-interpretation not run for it)</p>'
    facts: list[tuple[str, str]] = []
    if e.label_source:
        facts.append(("label by", e.label_source))
    for k, v in e.scores.items():
        facts.append((k, fmt(v)))
    if e.load is not None:
        width = max(1, int(round(min(e.load, 1.0) * 120)))
        facts.append(("load", f"{e.load:.3f}"))
    for k, v in e.facts.items():
        facts.append((k, fmt(v) if isinstance(v, float) else str(v)))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    parts = [f'<h3>{esc(e.model)} · layer {e.layer} · expert {e.expert}</h3>', label]
    if e.load is not None:
        parts.append(f'<span class="bar" style="width:{width}px" title="load"></span>')
    if dl:
        parts.append(f'<dl class="kv">{dl}</dl>')
    if e.concepts:
        chips = "".join(f"<span>{esc(c)} {f:.2f}</span>" for c, f in e.concepts)
        parts.append(f'<div>probes best for (F1): <span class="chips">{chips}</span></div>')
    if e.promoted:
        chips = "".join(f"<span>{esc(t)}</span>" for t in e.promoted)
        parts.append(f'<div>promotes: <span class="chips mono">{chips}</span></div>')
    if e.histogram and e.histogram.get("counts"):
        edges = e.histogram.get("edges") or []
        span = f" ({edges[0]:.3g} to {edges[-1]:.3g})" if len(edges) > 1 else ""
        parts.append(f'<div>activations in its windows{esc(span)}:</div>'
                     + figures.svg_histogram(e.histogram["counts"]))
    if e.windows:
        parts.append("<div>top activating windows:</div>")
        parts += [window_html(w.get("tokens") or [], w.get("acts") or []) for w in e.windows]
    return (f'<article class="expert-card" id="{esc(anchor)}" data-model="{esc(e.model)}" '
            f'data-layer="{e.layer}" data-search="{esc(_search_text(e))}">{"".join(parts)}'
            "</article>")


def render(_data: None, shared: Shared) -> Section:
    experts = sorted(shared.experts.values(), key=lambda e: (e.model, e.layer, e.expert))
    if not experts:
        return Section(ID, TITLE, not_run="no expert results here (an MoE model's probing, "
                                          "auto-interpretation or routing statistics)")
    models = sorted({e.model for e in experts})
    layers = sorted({e.layer for e in experts})
    model_opts = "".join(f'<option value="{esc(m)}">{esc(m)}</option>' for m in models)
    layer_opts = "".join(f'<option value="{l}">layer {l}</option>' for l in layers)
    filters = (
        '<div class="filters">'
        f'<label>model <select id="expert-model"><option value="">all</option>{model_opts}'
        '</select></label>'
        f'<label>layer <select id="expert-layer"><option value="">all</option>{layer_opts}'
        '</select></label>'
        '<input id="expert-search" type="search" placeholder="search labels, concepts, tokens">'
        f'<span id="expert-count">{len(experts)} experts</span></div>')
    cards = "".join(card(e, shared) for e in experts)
    return Section(ID, TITLE, body=f'<div id="expert-browser">{filters}'
                                   f'<div class="cards">{cards}</div></div>')
