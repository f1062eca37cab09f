"""Reading units from a store and drawing their windows: scores, semantics, disjoint sets, deciles,
per-unit negatives (the fix) and the paper's shared ones."""

from __future__ import annotations

import numpy as np
import pytest
from ai_helpers import unit_examples

from moelens.analysis.autointerp.corpus import Corpus, Window
from moelens.analysis.autointerp.units import Unit, read_activations, resolve_units
from moelens.errors import ConfigError
from moelens.store import ActivationStore


@pytest.fixture(scope="module")
def store(planted_store):
    return ActivationStore.open(planted_store)


def test_expert_scores_read_from_the_store(store):
    ids, w = store.routing(0)
    out = store.dense(0, "expert_out")
    units = [Unit(0, "expert_out", 1), Unit(0, "expert_gate", 1), Unit(0, "expert_mean", 1)]
    got = dict(read_activations(store, units))
    hit = (ids == 1).any(axis=1)
    np.testing.assert_allclose(got[units[0]], out[:, 1], rtol=1e-6)
    np.testing.assert_allclose(got[units[1]][hit], (w * (ids == 1)).sum(axis=1)[hit], rtol=1e-6)
    assert (got[units[1]][~hit] == 0).all() and (got[units[0]][~hit] == 0).all()
    tok, acts = store.expert(0, 1)
    np.testing.assert_allclose(got[units[2]][tok], acts.mean(axis=1), rtol=1e-6)


def test_expert_neurons_gated_is_times_the_router_weight(store):
    ids, w = store.routing(0)
    routed = dict(read_activations(store, [Unit(0, "expert", 4, 2)], "routed"))[Unit(0, "expert", 4, 2)]
    gated = dict(read_activations(store, [Unit(0, "expert", 4, 2)], "gated"))[Unit(0, "expert", 4, 2)]
    weight = (w * (ids == 4)).sum(axis=1)
    np.testing.assert_allclose(gated, routed * weight, rtol=1e-6)
    assert (routed[weight == 0] == 0).all() and (routed[weight > 0] > 0).all()


def test_unit_specs_and_their_errors(store):
    assert [u.expert for u in resolve_units(store, [0], "expert", ["0", "3-4"])] == [0, 3, 4]
    assert len(resolve_units(store, [0], "neuron", ["1:0-2", "all:7"], space="expert")) == 3 + 6
    assert [u.index for u in resolve_units(store, [1], "neuron", ["2", "5-6"], space="ffn")] == [2, 5, 6]
    with pytest.raises(ConfigError, match="0..5"):
        resolve_units(store, [0], "expert", ["9"])
    with pytest.raises(ConfigError, match="EXPERT:INDEX"):
        resolve_units(store, [0], "neuron", ["3"], space="expert")


def test_window_text_is_the_document_text(store):
    corpus = Corpus.from_store(store, 32)
    docs = store.documents()
    lo, hi = int(corpus.chunk_starts[5]), int(corpus.chunk_stops[5])
    text = "".join(corpus.pieces(lo, hi))
    doc = docs[int(corpus.doc_ids[lo])]
    assert text == doc[corpus.offsets[lo, 0]:corpus.offsets[hi - 1, 1]]
    assert (corpus.chunk_stops - corpus.chunk_starts <= 32).all()


def test_sets_are_disjoint_and_stratified(planted_store):
    unit = Unit(1, "ffn", -1, 1)
    pool = [Unit(1, "ffn", -1, i) for i in range(13)]
    ex = unit_examples(planted_store, [unit], pool, n_explain=40, n_test=50, n_negative=30)[unit]
    chunks = {name: [w.chunk for w in getattr(ex, name)] for name in ("explain", "test", "explain_negatives", "negatives")}
    for name, ch in chunks.items():
        assert len(ch) == len(set(ch)), name
    all_chunks = [c for ch in chunks.values() for c in ch]
    assert len(all_chunks) == len(set(all_chunks))
    assert len(ex.explain) == 40 and len(ex.test) == 50 and len(ex.negatives) == 30
    assert {w.decile for w in ex.explain} == set(range(1, 11))  # quantile sampling spans the deciles
    assert all(w.max_act > 0 for w in ex.explain + ex.test)
    assert not any(w.fires for w in ex.negatives + ex.explain_negatives)
    assert {w.kind for w in ex.negatives} == {"random", "others", "hard"}
    # windows are centred on their strongest token unless a document edge is in the way (64-token docs)
    inner = [w for w in ex.test if w.start % 64 and w.start % 64 + 32 < 64]
    assert inner and all(w.acts[16] > 0 for w in inner)


def test_top_sampling_holds_out_the_next_ranks(planted_store):
    unit = Unit(1, "ffn", -1, 0)
    ex = unit_examples(planted_store, [unit], sampling="top", n_explain=20, n_test=10)[unit]
    assert min(w.max_act for w in ex.explain) >= max(w.max_act for w in ex.test)
    assert [w.chunk for w in ex.binary_positives] == [w.chunk for w in sorted(ex.test, key=lambda w: -w.max_act)]


def test_binary_negatives_per_unit_and_shared(planted_store):
    units = [Unit(1, "ffn", -1, i) for i in (0, 1, 2, 3, 5, 6)]
    per = unit_examples(planted_store, units, n_test=20, n_negative=10)
    shared = unit_examples(planted_store, units, n_test=20, n_negative=10, binary_shared=True)
    sets = [frozenset(w.chunk for w in per[u].binary_negatives) for u in units]
    assert len(set(sets)) == len(units)  # each unit draws its own
    for u in units:
        negs = per[u].binary_negatives
        assert len(negs) == 10 and all(w.source and w.source != u.name for w in negs)
        assert all(w.marks for w in negs)  # shown with the source unit's highlighted tokens
        assert not any(w.fires for w in negs)  # the fix prefers windows where the unit is quiet
    distinct_shared = set().union(*[{w.chunk for w in shared[u].binary_negatives} for u in units])
    distinct_per = set().union(*sets)
    # the paper's scripts: nearly the same negatives for every unit (11 distinct over 64 experts)
    assert len(distinct_shared) <= 20 < 40 <= len(distinct_per)


def test_a_unit_that_never_fires_is_reported_not_an_error(planted_store):
    unit = Unit(1, "ffn", -1, 4)
    ex = unit_examples(planted_store, [unit])[unit]
    assert ex.status == "no activating examples" and not ex.explain


def test_concept_masks_follow_the_registry_rule():
    """The rules search's fast concept masks equal the registry's own token labels."""
    from moelens.analysis.autointerp.explainers.predicates import View, concept_mask
    from moelens.analysis.autointerp.explainers.rules import concept_names
    from moelens.data.concepts import get_concept, token_labels

    texts = [["Let", " $x", "^2", "+", "y$", " be", " 12", ",", " see", " [@ref]", "."],
             ["def", " f", "(x", "):", " return", " x", "  ", "# NOTE", "\n", "1", ".e4", " e5"]]
    names = concept_names(("text", "latex", "code", "chess"))
    assert len(names) > 40
    for tokens in texts:
        view = View(Window(0, tokens, [0] * len(tokens), [0.0] * len(tokens), "activating", 0))
        for name in names:
            want = token_labels(get_concept(name), view.text, view.offsets)
            assert concept_mask(name, view).tolist() == want.tolist(), (name, tokens)


def test_context_features_see_a_bracket_opened_before_the_window():
    from moelens.analysis.autointerp.explainers.predicates import View

    tokens = ["a", " b", ")", " c", " (", "d", ")", "\n", "e"]
    view = View(Window(0, tokens, [0] * 9, [0.0] * 9, "activating", 0))
    assert view.context("in_parens").tolist() == [True, True, False, False, False, True, False, False, False]
    assert view.context("line_start").tolist() == [False] * 8 + [True]
    assert view.context("line_end").tolist() == [False] * 6 + [True, False, False]
