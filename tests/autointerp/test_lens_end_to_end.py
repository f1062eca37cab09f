"""A tiny OLMoE captured into a store: ``moelens lens`` gives each expert's promoted tokens after
the final norm, and ``moelens interpret`` labels and scores every expert end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ai_helpers import char_tokenizer
from clitools import run_cli

from moelens import cli
from moelens.analysis.autointerp.lens import load_lens
from moelens.errors import ConfigError
from moelens.store import ActivationStore

TEXT = ("the quick brown fox jumps over the lazy dog (twice). 12 dogs, 7 cats and 3 birds; "
        "pack my box with five dozen liquor jugs! how vexingly quick daft zebras jump.\n")


@pytest.fixture(scope="module")
def olmoe(tmp_path_factory):
    from transformers import OlmoeConfig, OlmoeForCausalLM

    root = tmp_path_factory.mktemp("olmoe_lens")
    tok = char_tokenizer(TEXT)
    cfg = OlmoeConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, num_experts=8, num_experts_per_tok=2,
                      max_position_embeddings=128, pad_token_id=0, bos_token_id=2, eos_token_id=2)
    torch.manual_seed(0)  # test-only: seeded tiny weights
    model = OlmoeForCausalLM(cfg).eval()
    with torch.no_grad():  # a final norm far from the identity, so that it changes the ranking
        model.model.norm.weight.copy_(torch.exp(2 * torch.randn(32)))
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    (root / "corpus.txt").write_text(TEXT * 30)
    assert cli.main(["capture", "--model", str(root / "model"), "--corpus", str(root / "corpus.txt"), "--out",
                     str(root / "store"), "--ctx", "64", "--dtype", "fp32", "--quiet"]) == 0
    assert cli.main(["lens", "--model", str(root / "model"), "--store", str(root / "store"), "--top_n", "5",
                     "--tokens", "64", "--quiet"]) == 0
    return root, model, tok


def test_lens_is_the_unembedding_of_the_normed_expert_outputs(olmoe):
    from moelens.capture.adapters import get_adapter

    root, model, tok = olmoe
    lens = json.loads((root / "store" / "lens.json").read_text())
    store = ActivationStore.open(root / "store")
    adapter = get_adapter(model)
    differ = 0
    for layer in (0, 1):
        ids, w = store.routing(layer)
        for e in range(8):
            tok_idx, hidden = store.expert(layer, e)
            h = torch.from_numpy(hidden)
            with torch.no_grad():
                out = adapter.expert_output(layer, e, h)
                score = (w[tok_idx] * (ids[tok_idx] == e)).sum(axis=1) * out.norm(dim=-1).numpy()
                top = np.argsort(-score, kind="stable")[:64]
                fixed = model.lm_head(model.model.norm(out[top]).mean(0))
                paper = model.lm_head(out[top].mean(0))
            entry = lens["layers"][str(layer)]["experts"][str(e)]
            assert [t["id"] for t in entry["promoted"]] == torch.topk(fixed, 5).indices.tolist()
            assert [t["id"] for t in entry["promoted_no_norm"]] == torch.topk(paper, 5).indices.tolist()
            assert entry["promoted"][0]["token"] == tok.decode([entry["promoted"][0]["id"]])
            differ += entry["promoted"] != entry["promoted_no_norm"]
    assert differ > 0  # the norm matters: the paper's reading is not the same


def test_a_lens_of_another_store_is_refused(olmoe, tmp_path):
    root, _, _ = olmoe
    store = ActivationStore.open(root / "store")
    data = json.loads((root / "store" / "lens.json").read_text())
    data["store_fingerprint"] = "something else"
    (tmp_path / "lens.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="another store"):
        load_lens(tmp_path / "lens.json", store)


def test_every_expert_is_labelled_and_scored(olmoe):
    root, _, _ = olmoe
    out = root / "interpret"
    proc = run_cli("interpret", "--store", root / "store", "--out", out, "--layer", "1", "--n_explain", "10",
                   "--n_test", "10", "--n_negative", "10", "--scorers", "detection", "fuzzing", "binary", "rules",
                   "intruder")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lens = load_lens(root / "store" / "lens.json", ActivationStore.open(root / "store"))
    for e in range(8):
        rec = json.loads((out / "units" / f"L1.expert_out.E{e}.json").read_text())
        assert rec["status"] == "ok" and rec["explanation"]["text"] and rec["explanation"]["predicate"]
        assert rec["promoted"] == lens[(1, e)]
        for name in ("detection", "fuzzing", "binary", "rules", "intruder"):
            m = rec["scores"][name]["metrics"]
            assert m["answered"] > 0 and m["failures"] == 0, (name, m)
    table = (out / "summary.csv").read_text().splitlines()
    assert table[0].startswith("scorer,metric") and any(r.startswith("detection,balanced_accuracy,8,") for r in table)
    assert (out / "deciles.csv").exists() and (out / "figures" / "deciles.png").stat().st_size > 1000
    assert "detection" in proc.stdout and (out / "DONE").exists()
