"""Upcycling a dense model into experts: width rules, exactness at init, the CLI command."""

from __future__ import annotations

import json

import pytest
import torch
from model_helpers import one_thread, tiny_model  # noqa: F401 (autouse fixture)
from transformers import AutoModelForCausalLM

from moelens.models import MoELayer
from moelens.models.upcycle import expert_units, upcycle_model
from moelens.models.upcycle_command import UpcycleConfig, run

IDS = torch.randint(0, 32, (2, 12), generator=torch.Generator().manual_seed(0))


def dense(act="relu", bias=True, width=32):
    return tiny_model(seed=3, ffn="dense", ffn_act=act, ffn_width=width, bias=bias)


def layer_pairs(d_model, m_model, x):
    """(dense output, moe output) of every layer's FFN on the same input."""
    return [(db.mlp(x), mb.mlp(x)) for db, mb in zip(d_model.transformer.h, m_model.transformer.h)]


def test_cli_upcycle_same_width_is_exact(tmp_path):
    src = dense(act="relu")
    src.save_pretrained(tmp_path / "dense")
    cfg = UpcycleConfig(source=tmp_path / "dense", out=tmp_path / "moe", expert_width=32, num_experts=4,
                        top_k=2, seed=1)
    assert run(cfg) == 0
    moe = AutoModelForCausalLM.from_pretrained(tmp_path / "moe").eval()
    c = moe.config
    assert (c.ffn, c.router, c.expert_act, c.num_experts, c.expert_width) == ("moe", "sparsity", "relu", 4, 32)
    assert json.loads((tmp_path / "moe" / "upcycle.json").read_text())["moe_settings"]["top_k"] == 2
    x = torch.randn(2, 5, 16)
    for d_out, m_out in layer_pairs(src, moe, x):
        torch.testing.assert_close(m_out, d_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(moe(IDS).logits, src(IDS).logits, atol=1e-5, rtol=0)


def test_partition_with_uniform_weights_is_exact():
    """M*D == F: the slices partition the dense units; scale F/D and weights 1/M give the dense output."""
    src = dense(act="gelu")
    moe = upcycle_model(src, dict(num_experts=4, top_k=4, expert_width=8, router="softmax",
                                  expert_act="gelu"), seed=0).eval()
    units, scale = expert_units(32, 8, 4)
    assert scale == 4.0 and sorted(torch.cat(units).tolist()) == list(range(32))
    for block in moe.transformer.h:
        block.mlp.router.weight.data.zero_()  # uniform router -> every expert weighted 1/4
    for d_out, m_out in layer_pairs(src, moe, torch.randn(3, 16)):
        torch.testing.assert_close(m_out, d_out, atol=1e-5, rtol=0)


def test_rolled_slices_and_scale():
    units, scale = expert_units(dense_width=10, expert_width=4, num_experts=4)
    assert scale == 2.5
    assert [u.tolist() for u in units] == [[0, 1, 2, 3], [2, 3, 4, 5], [5, 6, 7, 8], [7, 8, 9, 0]]
    src = dense(act="relu", bias=False)
    moe = upcycle_model(src, dict(num_experts=4, top_k=2, expert_width=12, router="sparsity",
                                  expert_act="relu"), seed=0)
    w_fc, w_proj = src.transformer.h[0].mlp.c_fc.weight, src.transformer.h[0].mlp.c_proj.weight
    layer: MoELayer = moe.transformer.h[0].mlp
    u1, _ = expert_units(32, 12, 4)
    torch.testing.assert_close(layer.w_enc[1], w_fc[u1[1]].t())
    torch.testing.assert_close(layer.w_dec[1], w_proj[:, u1[1]].t() * (32 / 12))


def test_wider_experts_are_padded_and_exact():
    src = dense(act="relu", width=8)
    moe = upcycle_model(src, dict(num_experts=2, top_k=1, expert_width=12, router="softmax",
                                  expert_act="relu"), seed=5).eval()
    layer = moe.transformer.h[0].mlp
    assert (layer.w_dec[:, 8:] == 0).all() and (layer.w_enc[:, :, 8:] != 0).all()
    for d_out, m_out in layer_pairs(src, moe, torch.randn(4, 16)):
        torch.testing.assert_close(m_out, d_out, atol=1e-5, rtol=0)
    again = upcycle_model(src, dict(num_experts=2, top_k=1, expert_width=12, router="softmax",
                                    expert_act="relu"), seed=5)
    assert torch.equal(again.transformer.h[0].mlp.w_enc, layer.w_enc)  # seeded


def test_upcycle_user_errors(tmp_path):
    from clitools import assert_user_error, run_cli

    assert_user_error(run_cli("upcycle", "--source", tmp_path / "missing", "--out", tmp_path / "o"),
                      "no config.json")
    dense(act="relu").save_pretrained(tmp_path / "d")
    assert_user_error(run_cli("upcycle", "--source", tmp_path / "d", "--out", tmp_path / "o",
                              "--top_k", "9"), "top_k=9")
    assert not (tmp_path / "o").exists()
    tiny_model(ffn="dense", ffn_act="geglu").save_pretrained(tmp_path / "g")
    assert_user_error(run_cli("upcycle", "--source", tmp_path / "g", "--out", tmp_path / "o"),
                      "geglu")
    assert_user_error(run_cli("upcycle", "--out", tmp_path / "o"), "--source")
    assert_user_error(run_cli("upcycle", "--source", tmp_path / "d", "--out", tmp_path / "o",
                              "--preset", "nope"), "unknown model preset 'nope'")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("x")
    assert_user_error(run_cli("upcycle", "--source", tmp_path / "d", "--out", tmp_path / "o"),
                      "already exists", "--overwrite")
    assert (tmp_path / "o" / "keep.txt").exists()


def test_cli_corrupt_source_is_one_line(tmp_path):
    from clitools import assert_user_error, run_cli

    dense().save_pretrained(tmp_path / "dense")
    weights = tmp_path / "dense" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    proc = run_cli("upcycle", "--source", tmp_path / "dense", "--out", tmp_path / "o")
    assert_user_error(proc, "cannot load the model", "model.safetensors")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("preset, router", [("moex", "sparsity"), ("switch", "softmax")])
def test_cli_readme_example_with_preset(tmp_path, preset, router):
    """The README's command works as written; --preset picks the MoE settings (not just the
    default), since the parser's generic --preset flag no longer hides UpcycleConfig.preset."""
    from clitools import run_cli

    dense(act="relu").save_pretrained(tmp_path / "runs" / "dense" / "model")
    proc = run_cli("upcycle", "--source", "runs/dense/model", "--out", "runs/moex-upcycled",
                   "--preset", preset, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((tmp_path / "runs" / "moex-upcycled" / "config.json").read_text())
    assert (saved["ffn"], saved["router"]) == ("moe", router)
    assert json.loads((tmp_path / "runs" / "moex-upcycled" / "upcycle.json").read_text())[
        "config"]["preset"] == preset
