"""A model whose forward cannot take a padding mask still captures in batches, as if unbatched.

DeepSeek-V3 with fewer key/value heads than attention heads fails inside transformers on any
batch whose mask holds a zero; capture then batches only windows of equal length.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from moelens import cli
from moelens.store import ActivationStore


@pytest.fixture(scope="module")
def deepseek_dir(tmp_path_factory):
    from store_helpers import TEXT, char_tokenizer
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    tok = char_tokenizer(TEXT)
    cfg = DeepseekV3Config(vocab_size=len(tok), hidden_size=32, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=64, num_hidden_layers=3,
                           intermediate_size=40, moe_intermediate_size=12, n_routed_experts=8,
                           num_experts_per_tok=2, n_shared_experts=2, first_k_dense_replace=1,
                           n_group=2, topk_group=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                           kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=4, qk_nope_head_dim=4,
                           v_head_dim=8, pad_token_id=0, bos_token_id=1, eos_token_id=1)
    torch.manual_seed(0)  # test-only: seeded tiny weights
    model = DeepseekV3ForCausalLM(cfg).eval()
    ids = torch.tensor([[3, 4, 5], [3, 4, 0]])
    with pytest.raises(RuntimeError):  # the failure capture must work around
        model(input_ids=ids, attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]))
    d = tmp_path_factory.mktemp("deepseek")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_padded_batches_are_avoided_and_equal_unbatched_capture(deepseek_dir, tmp_path):
    from store_helpers import TEXT

    corpus = tmp_path / "docs.jsonl"  # documents of uneven lengths: windows of many lengths
    lengths = [5, 37, 16, 3, 29, 50, 11, 16, 44, 8]
    corpus.write_text("".join(json.dumps({"text": (TEXT * 2)[i:i + n]}) + "\n"
                              for i, n in enumerate(lengths)))
    base = ["capture", "--model", str(deepseek_dir), "--corpus", str(corpus), "--ctx", "16",
            "--shard_tokens", "48", "--dtype", "fp32", "--quiet"]
    assert cli.main([*base, "--batch_size", "4", "--out", str(tmp_path / "batched")]) == 0
    assert cli.main([*base, "--batch_size", "1", "--out", str(tmp_path / "single")]) == 0
    b, s = ActivationStore.open(tmp_path / "batched"), ActivationStore.open(tmp_path / "single")
    assert b.n_tokens == s.n_tokens == sum(lengths) and b.layers == s.layers == [0, 1, 2]
    assert [(r["start"], r["stop"]) for r in b.manifest["shards"]] == \
        [(r["start"], r["stop"]) for r in s.manifest["shards"]]
    np.testing.assert_array_equal(b.tokens(), s.tokens())
    np.testing.assert_array_equal(b.doc_ids(), s.doc_ids())
    assert b.documents() == s.documents()

    def close(x, y):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5 * float(np.abs(y).max()))

    for l in (1, 2):
        ids_b, w_b = b.routing(l)
        ids_s, w_s = s.routing(l)
        np.testing.assert_array_equal(ids_b, ids_s)
        close(w_b, w_s)
        for e in range(b.num_experts(l)):
            tb, ab = b.expert(l, e)
            ts, as_ = s.expert(l, e)
            np.testing.assert_array_equal(tb, ts)
            if ts.size:
                close(ab, as_)
        close(b.dense(l, "shared"), s.dense(l, "shared"))
    for l in (0, 1, 2):
        close(b.dense(l, "resid"), s.dense(l, "resid"))
    close(b.dense(0, "ffn"), s.dense(0, "ffn"))
