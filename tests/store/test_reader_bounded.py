"""Bounded-memory reading: token selections read only the selected rows, chunked iterators cover
the store exactly, per-token columns and routing answer for a selection."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import N_TOKENS, SHARD_TOKENS, build

from moelens.store import ActivationStore
from moelens.store import format as fmt


@pytest.fixture(scope="module", params=["rows", "coo"])
def store(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("bounded") / "store"
    truth = build(root, coo=request.param == "coo")
    return ActivationStore.open(root), truth


SEL = np.array([40, 3, 17, 3, 33, 0, 47, 18])
"""Unsorted, repeated, over all three shards."""


def test_token_columns_and_routing_on_a_selection(store):
    st, truth = store
    np.testing.assert_array_equal(st.tokens(SEL), st.tokens()[SEL])
    np.testing.assert_array_equal(st.doc_ids(SEL), st.doc_ids()[SEL])
    np.testing.assert_array_equal(st.positions(SEL), st.positions()[SEL])
    np.testing.assert_array_equal(st.offsets(SEL), st.offsets()[SEL])
    ids, w = st.routing(0, tokens=SEL)
    np.testing.assert_array_equal(ids, truth.ids[SEL])
    np.testing.assert_array_equal(w, truth.weights[SEL])
    mask = np.zeros(N_TOKENS, bool)
    mask[SEL] = True
    np.testing.assert_array_equal(st.routing(0, tokens=mask)[0], truth.ids[np.flatnonzero(mask)])
    np.testing.assert_array_equal(st.dense(0, "expert_gate", SEL), st.dense(0, "expert_gate")[SEL])


def test_a_selection_reads_only_its_rows(store, monkeypatch):
    st, truth = store
    converted = []
    real = fmt.from_storage

    def spy(stored, dtype):
        converted.append(int(np.asarray(stored).shape[0]))
        return real(stored, dtype)

    monkeypatch.setattr(fmt, "from_storage", spy)
    for e in range(st.num_experts(0)):
        converted.clear()
        tok, acts = st.expert(0, e, tokens=SEL)
        routed = np.unique(SEL[(truth.ids[SEL] == e).any(axis=1)])
        np.testing.assert_array_equal(tok, routed)
        np.testing.assert_array_equal(acts, truth.hidden[routed, e])
        # rows layout converts exactly the rows asked for; coo the nonzeros of those rows
        assert sum(converted) <= routed.size * (1 if "values" in str(st.manifest["shards"][0]["files"])
                                                else truth.hidden.shape[2]), converted
        converted.clear()
        tok, acts = st.expert(0, e, semantics="gated", tokens=SEL)
        np.testing.assert_array_equal(tok, SEL)
        weight = (truth.weights[SEL] * (truth.ids[SEL] == e)).sum(axis=1)
        np.testing.assert_allclose(acts, truth.hidden[SEL, e] * weight[:, None], rtol=1e-6)


@pytest.mark.parametrize("chunk", [5, SHARD_TOKENS, 40, 10_000])
def test_chunked_iterators_cover_the_store(store, chunk):
    st, truth = store
    ranges = st.chunks(chunk)
    assert ranges[0][0] == 0 and ranges[-1][1] == N_TOKENS
    assert all(a < b and (i == 0 or ranges[i - 1][1] == a) for i, (a, b) in enumerate(ranges))
    assert all(b - a <= max(chunk, SHARD_TOKENS) + SHARD_TOKENS for a, b in ranges)
    for e in range(st.num_experts(0)):
        parts = list(st.iter_expert(0, e, chunk_tokens=chunk))
        tok = np.concatenate([p[0] for p in parts])
        np.testing.assert_array_equal(tok, st.expert(0, e)[0])
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), st.expert(0, e)[1])
        gated = np.concatenate([p[1] for p in st.iter_expert(0, e, "gated", chunk_tokens=chunk)])
        np.testing.assert_array_equal(gated, st.expert(0, e, "gated")[1])
    blocks = list(st.iter_dense(0, "resid", chunk_tokens=chunk))
    np.testing.assert_array_equal(np.concatenate([t for t, _ in blocks]), np.arange(N_TOKENS))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), truth.resid)
