"""``moelens specialize`` on a captured store of the domain-wired model: routing statistics that
can be predicted from the wiring, the logit lens through the final norm, bad K exits 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from clitools import assert_user_error, run_cli

from causal.planted import A, B, char_tokenizer, domain_model, tid, walk
from moelens import cli
from moelens.analysis.specialization import views
from moelens.capture.adapters import get_adapter


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    root = tmp_path_factory.mktemp("spec")
    domain_model().save_pretrained(root / "model")
    char_tokenizer().save_pretrained(root / "model")
    files = []
    for name, letters in (("alpha", A), ("beta", B)):
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": walk(letters, i, 24)}) + "\n" for i in range(6)))
        files.append(path)
    threads = torch.get_num_threads()
    try:
        assert cli.main(["capture", "--model", str(root / "model"), "--corpus", *map(str, files),
                         "--out", str(root / "store"), "--ctx", "24", "--dtype", "fp32", "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    return root, files


def test_logit_lens_reads_the_expert_output_through_the_final_norm():
    model = domain_model()
    adapter = get_adapter(model)
    with torch.no_grad():
        x = model.transformer.h[0].ln_2(model.transformer.wte(torch.tensor([tid("a"), tid("m")])))
        hidden = torch.relu(x @ model.transformer.h[0].mlp.w_enc[0])
    top = views.logit_lens_top(adapter, 0, 0, hidden.numpy(), 1, "final_norm")
    assert top[0, 0] == tid("b")  # expert 0 writes the next letter of domain A


def test_specialize_command(captured, tmp_path):
    root, files = captured
    out = tmp_path / "spec"
    proc = run_cli("specialize", "--store", root / "store", "--model", root / "model", "--ks", "2", "4",
                   "--domains", *files, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 always-on" in proc.stdout and "4 dead" in proc.stdout
    layers = pd.read_csv(out / "routing_layers.csv")
    assert layers.loc[0, "dead"] == 4 and layers.loc[0, "vocabulary_specialization"] == 1.0
    assert layers.loc[0, "topk_weight_mass"] == pytest.approx(1.0)
    experts = pd.read_csv(out / "routing_experts.csv").set_index("expert")
    assert experts.loc[0, "share_alpha"] == 1.0 and experts.loc[2, "share_beta"] == 1.0
    assert (experts.loc[[0, 1, 2, 3], "domain_specialization"] > 0.25).all()
    assert experts.loc[[4, 5, 6, 7], "routed_tokens"].eq(0).all()
    spec = pd.read_csv(out / "specialization.csv")
    assert set(spec["view"]) == {"input", "output"} and set(spec["k"]) == {2, 4}
    idle = spec[spec["expert"] >= 4]
    assert (idle["status"] == "untested").all() and idle["specialization"].isna().all()
    coact = np.load(out / "matrices" / "coactivation_L0.npy")
    assert coact[0, 1] == coact[0, 0] and coact[0, 2] == 0  # 0 and 1 always together, never with 2
    for fig in ("specialization_vs_layer.png", "load.png", "coactivation_L0.png"):
        assert (out / "figures" / fig).exists()

    assert_user_error(run_cli("specialize", "--store", root / "store", "--model", root / "model",
                              "--ks", "100", "--out", tmp_path / "bad"), "larger than the vocabulary")
    assert not (tmp_path / "bad").exists()
