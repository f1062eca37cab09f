"""Dense layers, shared experts and residuals through the real adapters (Qwen2-MoE, tiny).

Skipped until ``moelens.capture.adapters`` is on the branch; then it checks that ``ffn``,
``shared`` and ``resid`` read back from a store equal what the adapter reports on an unpadded
forward, and that the default spaces follow each layer's kind.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from moelens import cli
from moelens.store import ActivationStore

adapters = pytest.importorskip("moelens.capture.adapters")


class _Recorder:
    def __init__(self):
        self.d = {}

    def _add(self, key, t):
        self.d.setdefault(key, []).append(t.detach().float().clone())

    def routing(self, layer, ids, weights):
        self._add((layer, "ids"), ids)

    def expert_rows(self, *args):
        pass

    def shared(self, layer, hidden, out):
        self._add((layer, "shared"), hidden)

    def ffn(self, layer, hidden):
        self._add((layer, "ffn"), hidden)

    def resid(self, layer, hidden):
        self._add((layer, "resid"), hidden)

    def cat(self, layer, what):
        return torch.cat(self.d[(layer, what)]).numpy()


def test_dense_and_shared_spaces_round_trip(tmp_path):
    from store_helpers import TEXT, char_tokenizer
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    tok = char_tokenizer(TEXT)
    cfg = Qwen2MoeConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=24,
                         moe_intermediate_size=16, shared_expert_intermediate_size=20,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                         num_experts=8, num_experts_per_tok=2, mlp_only_layers=[0],
                         max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=1)
    torch.manual_seed(0)  # test-only: seeded tiny weights
    model = Qwen2MoeForCausalLM(cfg).eval()
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    (tmp_path / "c.txt").write_text(TEXT * 2)
    assert cli.main(["capture", "--model", str(tmp_path / "m"), "--corpus", str(tmp_path / "c.txt"),
                     "--ctx", "50", "--batch_size", "2", "--shard_tokens", "70", "--quiet",
                     "--dtype", "fp32", "--out", str(tmp_path / "s")]) == 0
    store = ActivationStore.open(tmp_path / "s")
    assert store.spaces(0) == ["ffn", "resid"] and store.width(0, "ffn") == 24
    assert store.spaces(1) == ["expert", "expert_gate", "expert_out", "shared", "resid"]
    assert store.width(1, "shared") == 20 and store.width(1, "expert") == 16

    rec = _Recorder()
    handle = adapters.get_adapter(model).attach(rec, [0, 1, 2], ["expert", "shared", "ffn", "resid"])
    tokens, pos = store.tokens(), store.positions()
    starts = list(np.flatnonzero(pos == 0)) + [tokens.size]
    with torch.no_grad():
        for a, b in itertools.pairwise(starts):
            model(input_ids=torch.from_numpy(tokens[a:b])[None])
    handle.remove()
    np.testing.assert_allclose(store.dense(0, "ffn"), rec.cat(0, "ffn"), atol=1e-5)
    for layer in (1, 2):
        np.testing.assert_allclose(store.dense(layer, "shared"), rec.cat(layer, "shared"), atol=1e-5)
        np.testing.assert_array_equal(store.routing(layer)[0], rec.cat(layer, "ids"))
        sel, shared = store.expert(layer, 0, space="shared", tokens=[3, 1])
        np.testing.assert_array_equal(sel, [3, 1])
        np.testing.assert_allclose(shared, rec.cat(layer, "shared")[[3, 1]], atol=1e-5)
    for layer in range(3):
        np.testing.assert_allclose(store.dense(layer, "resid"), rec.cat(layer, "resid"), atol=1e-5)
    stats = store.unit_stats(0, "ffn")
    np.testing.assert_allclose(stats["max"], rec.cat(0, "ffn").max(0), rtol=1e-5)
