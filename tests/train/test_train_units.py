"""The trainer's parts: schedule, parameter groups, sampling, config, presets, metrics file."""

# ruff: noqa: F811  (pytest fixtures imported from train_fixtures are redefined as arguments)

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_fixtures import backend, make_model, one_thread  # noqa: F401 (pytest fixtures)
from train_helpers import tiny_spec

from moelens import config
from moelens.training.command import TrainConfig
from moelens.training.metrics import MetricsLog
from moelens.training.optim import param_groups
from moelens.training.sampler import BatchPlan, WindowSampler, train_offsets
from moelens.training.schedule import lr_at


def test_warmup_then_cosine_to_min_lr():
    lrs = [lr_at(s, 1.0, 0.1, 10, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warmup
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)  # last update: min_lr
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[60] == pytest.approx(0.55, abs=0.01)  # half-way down the cosine
    assert lr_at(5, 1.0, 0.1, 0, 10) < 1.0 and lr_at(0, 1.0, 0.1, 0, 10) == pytest.approx(1.0)


def test_no_weight_decay_on_norms_biases_embeddings(make_model):
    model = make_model(tiny_spec(), 32, 32)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = {id(p): n for n, p in model.named_parameters()}  # tied weights appear once here
    decayed = {ids[id(p)] for p in decay["params"]}
    kept = {ids[id(p)] for p in no_decay["params"]}
    assert len(decayed) + len(kept) == len(ids) and not decayed & kept
    assert all(p.ndim >= 2 for p in decay["params"])
    for name in kept:
        assert "ln" in name or "bias" in name or "wte" in name or "wpe" in name, name
    for name in decayed:
        assert "wte" not in name and "wpe" not in name and ".ln" not in name, name
    modules = dict(model.named_modules())
    assert any(isinstance(modules[n.rsplit(".", 1)[0]], torch.nn.Embedding) for n in kept)


@pytest.mark.parametrize("preset", ["moex", "switch", "dense-gelu"])
def test_no_weight_decay_on_any_bias(make_model, preset):
    """With bias=True every bias is kept from decay, the MoE's [M, D] expert biases included."""
    model = make_model(tiny_spec(preset=preset, bias=True), 32, 32)
    decay, no_decay = param_groups(model, 0.1)
    ids = {id(p): n for n, p in model.named_parameters()}
    decayed = {ids[id(p)] for p in decay["params"]}
    kept = {ids[id(p)] for p in no_decay["params"]}
    biases = {n for n in ids.values() if n.rsplit(".", 1)[-1] in ("bias", "b_enc", "b_dec")}
    assert biases and biases <= kept and not biases & decayed
    if preset != "dense-gelu":
        assert any(n.endswith("b_enc") for n in kept)
        assert {n.rsplit(".", 1)[-1] for n in decayed} >= {"w_enc", "w_dec"}


def test_windows_are_a_function_of_seed_and_step():
    s = WindowSampler(np.arange(1000) % 256, ctx=16)
    plan = BatchPlan(batch_size=4, grad_accum=2)
    a, b = train_offsets(s, plan, 0, 7), train_offsets(s, plan, 0, 7)
    assert np.array_equal(a, b) and len(a) == 8
    assert not np.array_equal(a, train_offsets(s, plan, 0, 8))
    assert not np.array_equal(a, train_offsets(s, plan, 1, 7))
    x, y = s.windows(a[:4])
    assert x.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])
    assert a.max() <= 1000 - 17


def test_process_slices_tile_the_global_batch():
    s = WindowSampler(np.zeros(500, dtype=np.uint8), ctx=8)
    offsets = train_offsets(s, BatchPlan(8, 3), 5, 2)
    for micro in range(3):
        whole = BatchPlan(8, 3).local(offsets, micro)
        parts = [BatchPlan(8, 3, rank=r, world_size=4).local(offsets, micro) for r in range(4)]
        assert np.array_equal(np.concatenate(parts), whole) and len(whole) == 8


def test_chess_blocks_of_ctx_plus_one_start_at_block_boundaries():
    tokens = np.arange(10 * 32) % 32
    s = WindowSampler(tokens, ctx=31, block_size=32)
    offs = s.offsets(0, 0, 3, 50)
    assert s.aligned and s.n_windows == 10 and set(offs % 32) == {0}
    assert list(s.sequential_offsets()) == list(range(0, 320, 32))
    free = WindowSampler(tokens, ctx=15, block_size=32)
    assert not free.aligned and free.n_windows == 320 - 15
    assert list(free.sequential_offsets())[:3] == [0, 15, 30]


def test_max_tokens_rounds_up_to_whole_steps():
    cfg = TrainConfig(max_tokens=1000, batch_size=2, grad_accum=2, ctx=100)
    assert cfg.tokens_per_iter == 400 and cfg.total_iters == 3


@pytest.mark.parametrize("name", config.available_presets("train"))
def test_train_presets_parse_and_take_model_overrides(name):
    cfg = config.parse(TrainConfig, ["--preset", name, "--model.n_layer", "3"], prog="t",
                       preset_kind="train")
    assert cfg.model.n_layer == 3 and cfg.data is not None and cfg.out is not None
    assert cfg.max_iters and cfg.model.preset in ("moex", "switch", "dense-gelu")


def test_paper_preset_matches_the_paper():
    cfg = config.parse(TrainConfig, ["--preset", "train-chess-8l-paper"], prog="t",
                       preset_kind="train")
    m = cfg.model
    assert (m.n_layer, m.n_head, m.n_embd, m.num_experts, m.top_k, m.expert_width) == (8, 8, 512, 8, 2, 2048)
    assert (cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters) == (3e-4, 3e-5, 2000, 600000)
    assert (cfg.batch_size, cfg.ctx, cfg.beta2, cfg.weight_decay, cfg.grad_clip) == (100, 1023, 0.95, 0.1, 1.0)
    assert m.bias is False and m.dropout == 0.0


def test_quickstart_is_a_small_moex():
    cfg = config.parse(TrainConfig, ["--preset", "quickstart-moex"], prog="t", preset_kind="train")
    assert cfg.model.preset == "moex" and 2 <= cfg.model.n_layer <= 4
    assert 128 <= cfg.model.n_embd <= 256 and (cfg.model.num_experts, cfg.model.top_k) == (8, 2)


def test_metrics_truncation_drops_later_and_cut_lines(tmp_path):
    log = MetricsLog(tmp_path)
    for i in range(5):
        log.write({"iter": i, "loss": float(i)})
    with open(log.path, "a") as fh:
        fh.write('{"iter": 5, "lo')  # a line cut by a kill
    log.truncate_after(3)
    assert [r["iter"] for r in log.read()] == [0, 1, 2, 3]
    log.write({"iter": 4, "loss": float("nan")})
    assert json.loads(log.path.read_text().splitlines()[-1])["loss"] is None


@pytest.mark.parametrize("name", config.available_presets("train"))
def test_train_presets_are_valid_model_configs(name):
    """Every train preset's model section builds a model config."""
    from moelens.models import presets

    cfg = config.parse(TrainConfig, ["--preset", name], prog="t", preset_kind="train")
    mcfg = presets.model_config(cfg.model.preset, **{"vocab_size": 32, **cfg.model.overrides()})
    assert mcfg.n_layer == cfg.model.n_layer and mcfg.n_positions >= cfg.ctx
