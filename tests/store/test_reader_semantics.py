"""ActivationStore.expert under the three routing semantics, with repeated and unsorted tokens."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import N_TOKENS, build

from moelens.store import ActivationStore


@pytest.fixture(scope="module", params=["rows", "coo"])
def store(tmp_path_factory, request):
    """The synthetic store in either expert layout, with what was written into it."""
    root = tmp_path_factory.mktemp("synthetic") / "store"
    truth = build(root, coo=request.param == "coo")
    return ActivationStore.open(root), truth


def _expected(truth, expert, sel, gated):
    routed = (truth.ids[sel] == expert)
    acts = truth.hidden[sel, expert] * routed.any(axis=1)[:, None]
    if gated:
        acts = acts * (truth.weights[sel] * routed).sum(axis=1)[:, None]
    return acts


@pytest.mark.parametrize("semantics", ["zero_filled", "gated"])
def test_repeated_tokens_get_their_values_every_time(store, semantics):
    st, truth = store
    for expert in range(st.num_experts(0)):
        routed = np.flatnonzero((truth.ids == expert).any(axis=1))
        # routed tokens asked for twice (also out of order), and one that is not routed
        unrouted = int(np.setdiff1d(np.arange(N_TOKENS), routed)[0])
        sel = np.array([routed[1], routed[1], routed[0], unrouted, routed[1], routed[-1], routed[0]])
        tok, acts = st.expert(0, expert, semantics=semantics, tokens=sel)
        np.testing.assert_array_equal(tok, sel)
        expect = _expected(truth, expert, sel, semantics == "gated")
        np.testing.assert_array_equal(acts, expect)
        assert (np.abs(acts[[0, 1, 2, 4, 5, 6]]).max(axis=1) > 0).all()
        np.testing.assert_array_equal(acts, st.expert(0, expert, semantics=semantics)[1][sel])
        # what dense() does with repeats, expert() now does too
        np.testing.assert_array_equal(st.dense(0, "resid", tokens=sel), truth.resid[sel])


@pytest.mark.parametrize("semantics", ["zero_filled", "gated"])
def test_whole_store_matches_what_was_written(store, semantics):
    st, truth = store
    all_tokens = np.arange(N_TOKENS)
    for expert in range(st.num_experts(0)):
        tok, acts = st.expert(0, expert, semantics=semantics)
        np.testing.assert_array_equal(tok, all_tokens)
        np.testing.assert_array_equal(acts, _expected(truth, expert, all_tokens, semantics == "gated"))


def test_routed_keeps_each_routed_token_once_in_order(store):
    st, truth = store
    for expert in range(st.num_experts(0)):
        routed = np.flatnonzero((truth.ids == expert).any(axis=1))
        tok, acts = st.expert(0, expert)
        np.testing.assert_array_equal(tok, routed)
        np.testing.assert_array_equal(acts, truth.hidden[routed, expert])
        sel = [int(routed[2]), int(routed[2]), int(routed[0]), int(routed[0])]
        tok, acts = st.expert(0, expert, tokens=sel)
        np.testing.assert_array_equal(tok, sorted(set(sel)))
        np.testing.assert_array_equal(acts, truth.hidden[sorted(set(sel)), expert])
