"""Specialization's statistics: JSD in bits, the small-sample null, spherical k-means."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moelens.analysis.specialization import jsd, kmeans, views
from moelens.errors import ConfigError


def test_jsd_bits_bounds():
    p = np.array([0.5, 0.5, 0.0])
    assert jsd.jsd_bits(p, p) == 0.0
    assert jsd.jsd_bits(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert 0 < jsd.jsd_bits(np.array([0.9, 0.1]), np.array([0.5, 0.5])) < 1


def _random_routing(rng, n_tokens, vocab, experts, k):
    tokens = rng.integers(0, vocab, n_tokens)
    ids = np.stack([rng.choice(experts, k, replace=False) for _ in range(n_tokens)])
    return tokens, ids


def _specs(counts, rng):
    layer = counts.sum(0)
    return np.array([jsd.specialization(c, layer, rng) for c in counts])  # [E, (raw, null, spec)]


def test_uniform_routing_is_within_the_null_and_the_null_removes_small_sample_bias():
    rng = np.random.default_rng(0)
    labels = {50: rng.integers(0, 50, 400)}
    for n_tokens in (160, 4000):  # ~20 and ~500 slots per expert
        tokens, ids = _random_routing(rng, n_tokens, 400, 16, 2)
        got = _specs(views.input_counts(tokens, ids, labels, 16)[50], rng)
        raw, spec = got[:, 0], got[:, 2]
        if n_tokens == 160:
            assert raw.mean() > 0.2  # a small sample looks specialised although it is not
        # corrected: the bias is gone (what is left is a small fraction of the raw values)
        assert abs(spec.mean()) < 0.15 * raw.mean() and np.abs(spec).max() < 0.5 * raw.mean()
    # a planted expert that only ever sees tokens of cluster 0
    tokens, ids = _random_routing(rng, 4000, 400, 16, 2)
    cluster0 = np.flatnonzero(labels[50] == 0)
    ids[:, 0] = np.where(np.isin(tokens, cluster0), 0, ids[:, 0])
    ids[:, 1] = np.where(np.isin(tokens, cluster0), np.where(ids[:, 1] == 0, 1, ids[:, 1]), ids[:, 1])
    ids[(ids == 0) & ~np.isin(tokens, cluster0)[:, None]] = 15
    counts = views.input_counts(tokens, ids, labels, 16)[50]
    assert counts[0].nonzero()[0].tolist() == [0]
    spec = _specs(counts, rng)[:, 2]
    assert spec[0] > 0.8 and spec[0] > 10 * np.abs(spec[1:15]).max()


def test_spherical_kmeans_finds_planted_families_and_refuses_k_above_vocab():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=gen) * 3
    truth = torch.arange(60) % 3
    unemb = centres[truth] + 0.3 * torch.randn(60, 16, generator=gen) + 5.0  # a shared offset too
    labels = kmeans.cluster_vocabulary(unemb, [3], seed=1)[3]
    # the same partition up to naming the clusters
    assert len({(int(t), int(l)) for t, l in zip(truth, labels)}) == 3
    assert kmeans.default_ks(60) == [10, 50] and kmeans.default_ks(50000) == [10, 50, 100, 1000, 5000]
    with pytest.raises(ConfigError, match="larger than the vocabulary"):
        kmeans.spherical_kmeans(kmeans.prepare(unemb), 61, seed=0)
    again = kmeans.cluster_vocabulary(unemb, [3], seed=1)[3]
    assert np.array_equal(labels, again)


def test_routing_statistics_on_known_routing():
    from moelens.analysis.specialization import routing_stats

    ids_a = np.array([[0, 1], [0, 2], [1, 2]])
    ids_b = np.array([[3], [3], [0]])
    t = routing_stats.transitions(ids_a, ids_b, 3, 4)
    assert t.tolist() == [[0, 0, 0, 2], [1, 0, 0, 1], [1, 0, 0, 1]]
    c = routing_stats.coactivation(ids_a, 3)
    assert c.tolist() == [[2, 1, 1], [1, 2, 1], [1, 1, 2]]
    tokens = np.array([5, 5, 7])
    share, n = routing_stats.vocabulary_specialization(tokens, ids_a, 3, min_count=2)
    assert (share, n) == (1.0, 1)  # token 5 goes to expert 0 both times; 7 is seen once only
    layer, experts = routing_stats.layer_stats(ids_a, np.full((3, 2), 0.5), tokens, 4, 0.6, 1)
    assert layer["dead"] == 1 and layer["always_on"] == 3 and layer["topk_weight_entropy_bits"] == 1.0
    assert [e["token_share"] for e in experts] == pytest.approx([2 / 3, 2 / 3, 2 / 3, 0])
