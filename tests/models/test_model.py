"""The Hugging Face model: save/load round trip, generation, losses, presets, config errors."""

from __future__ import annotations

import json

import pytest
import torch
from model_helpers import one_thread, tiny_config, tiny_model  # noqa: F401 (autouse fixture)
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

from moelens.errors import ConfigError
from moelens.models import DenseMLP, MoELayer, MoelensConfig, MoelensForCausalLM, model_config
from moelens.models.presets import model_presets

KINDS = {
    "dense": dict(ffn="dense", ffn_act="gelu"),
    "switch": dict(ffn="moe", router="softmax", expert_act="gelu"),
    "moex": dict(ffn="moe", router="sparsity", expert_act="relu", router_temperature=0.5),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_save_pretrained_round_trip_and_generate(kind, tmp_path):
    model = tiny_model(**KINDS[kind])
    ids = torch.randint(0, 32, (2, 10), generator=torch.Generator().manual_seed(0))
    logits = model(ids).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "moelens"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()  # tied
    assert torch.equal(loaded(ids).logits, logits)
    assert loaded.generation_config.top_k == GenerationConfig().top_k  # experts' top_k must not leak
    mlp = loaded.transformer.h[1].mlp
    assert isinstance(mlp, MoELayer if kind != "dense" else DenseMLP)
    # greedy generate == the argmax loop done by hand
    out = loaded.generate(ids[:, :4], max_new_tokens=5, do_sample=False)
    seq = ids[:, :4]
    for _ in range(5):
        seq = torch.cat([seq, loaded(seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq)


def test_left_padding_matches_unpadded():
    model = tiny_model(**KINDS["moex"])
    ids = torch.randint(1, 32, (1, 6), generator=torch.Generator().manual_seed(1))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 6, dtype=torch.long)], 1)
    torch.testing.assert_close(model(padded, attention_mask=mask).logits[:, 3:], model(ids).logits,
                               atol=1e-5, rtol=0)


def test_loss_is_shifted_cross_entropy_plus_aux():
    model = tiny_model(**KINDS["switch"], aux_loss_coef=0.05)
    ids = torch.randint(0, 32, (2, 12), generator=torch.Generator().manual_seed(2))
    out = model(ids, labels=ids)
    ce = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 32), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.lm_loss, ce)
    aux = sum(m.aux_loss for m in model.moe_layers())
    assert float(out.aux_loss.detach()) > 0
    torch.testing.assert_close(out.aux_loss, aux)
    torch.testing.assert_close(out.loss, ce + aux)
    dense = tiny_model(**KINDS["dense"])
    d_out = dense(ids, labels=ids)
    assert float(d_out.aux_loss) == 0.0 and torch.equal(d_out.loss, d_out.lm_loss)
    out.loss.backward()  # every parameter that shapes the output gets a gradient
    assert all(p.grad is not None for p in model.parameters())


def test_presets_build_the_paper_chess_configs():
    assert set(model_presets()) >= {"dense-gelu", "dense-relu", "dense-geglu", "dense-solu", "switch",
                                    "moex", "ablation-relu-softmax", "ablation-gelu-sparsity"}
    moex, switch = model_config("moex"), model_config("model-switch")
    assert (moex.n_layer, moex.n_head, moex.n_embd, moex.vocab_size, moex.n_positions) == (8, 8, 512, 32, 1024)
    assert (moex.num_experts, moex.top_k, moex.expert_width, moex.bias) == (8, 2, 2048, False)
    assert (moex.router, moex.expert_act, switch.router, switch.expert_act) == ("sparsity", "relu", "softmax", "gelu")
    assert model_config("dense-solu").ffn_width == 4096 and model_config("dense-solu").ffn_act == "solu"
    assert model_config("ablation-relu-softmax").router == "softmax"
    assert model_config("ablation-gelu-sparsity").expert_act == "gelu"
    assert model_config("moex", n_layer=2).n_layer == 2
    assert isinstance(AutoConfig.for_model("moelens"), MoelensConfig)


@pytest.mark.parametrize("bad,needle", [
    (dict(ffn="moe", num_experts=4, top_k=5), "top_k=5 is larger than num_experts=4"),
    (dict(ffn_act="swish"), "unknown ffn_act 'swish'"),
    (dict(ffn="moe", expert_act="geglu"), "unknown expert_act 'geglu'"),
    (dict(ffn="moe", router="hash"), "unknown router 'hash'"),
    (dict(ffn="sparse"), "unknown ffn 'sparse'"),
    (dict(n_head=3), "not divisible by n_head=3"),
    (dict(ffn="moe", router_temperature=0.0), "router_temperature"),
])
def test_bad_configs_are_config_errors(bad, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        tiny_config(**bad)
    assert "\n" not in str(info.value)


def test_bad_presets_and_overrides_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown model preset 'nope'; choose one of: .*moex"):
        model_config("nope")
    with pytest.raises(ConfigError, match="unknown model setting 'n_layers'"):
        model_config("moex", n_layers=3)
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: model\nffn: moe\nnum_experts: 2\ntop_k: 3\n")
    with pytest.raises(ConfigError, match="top_k=3"):
        model_config(str(bad))


@pytest.mark.parametrize("kind", ["switch", "moex"])
def test_tiny_moe_model_learns_a_fixed_batch(kind):
    """End to end: loss (with aux) goes down and the layer statistics are refreshed."""
    model = tiny_model(**KINDS[kind]).train()
    ids = torch.randint(0, 32, (4, 16), generator=torch.Generator().manual_seed(4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = model(ids, labels=ids).loss
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.6 * first
    stats = model.moe_layers()[0].last_stats
    assert len(stats["load"]) == 4 and abs(sum(stats["load"]) - 1) < 1e-6 and stats["l0"] > 0


def test_pickled_weights_are_refused(tmp_path):
    model = tiny_model(**KINDS["dense"])
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForCausalLM.from_pretrained(tmp_path)


@pytest.mark.parametrize("kind", ["dense", "moex"])
def test_kv_cache_gives_the_same_logits_and_tokens(kind):
    model = tiny_model(**KINDS[kind])
    ids = torch.randint(1, 32, (2, 11), generator=torch.Generator().manual_seed(5))
    full = model(ids).logits
    first = model(ids[:, :4], use_cache=True)
    second = model(ids[:, 4:], past_key_values=first.past_key_values, use_cache=True)  # 7 tokens at once
    assert first.past_key_values.get_seq_length() == 11
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), full, atol=1e-5, rtol=0)
    lengths = []
    hook = model.transformer.wte.register_forward_hook(lambda m, i, o: lengths.append(i[0].shape[1]))
    cached = model.generate(ids[:, :5], max_new_tokens=6, do_sample=False, use_cache=True)
    hook.remove()
    assert lengths == [5] + [1] * 5  # the cache is really used
    assert torch.equal(cached, model.generate(ids[:, :5], max_new_tokens=6, do_sample=False, use_cache=False))
    # left padding with a cache == the unpadded prompt
    pad = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids[:1, :5]], 1)
    mask = (pad != 0).long()
    mask[:, 2:] = 1
    out = model.generate(pad, attention_mask=mask, max_new_tokens=6, do_sample=False, use_cache=True)
    assert torch.equal(out[:, 2:], cached[:1])


def _file_offsets(path) -> dict[str, int]:
    """Byte offset of every tensor in a safetensors file (8-byte length, JSON header, data)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    return {k: 8 + n + v["data_offsets"][0] for k, v in header.items() if k != "__metadata__"}


def test_reloaded_expert_weights_are_aligned_for_grouped_mm(tmp_path, monkeypatch):
    """A reloaded sparsity-router model runs the grouped GEMM and gives bitwise equal logits.

    This shape puts the expert weights 8 bytes off a 16-byte boundary in model.safetensors, so
    a loader that kept views into the memory-mapped file would silently take the per-expert
    loop (whose sums round differently) instead.
    """
    from moelens.models import dispatch as dsp

    torch.manual_seed(0)
    model = MoelensForCausalLM(MoelensConfig(
        vocab_size=32, n_positions=1024, n_layer=2, n_head=2, n_embd=128, ffn="moe",
        num_experts=8, top_k=2, expert_width=128, router="sparsity")).eval()
    ids = torch.randint(0, 32, (2, 10), generator=torch.Generator().manual_seed(0))
    chosen: list[str] = []
    pick = dsp.pick_backend
    monkeypatch.setattr(dsp, "pick_backend", lambda *a: chosen.append(pick(*a)) or chosen[-1])
    logits = model(ids).logits
    assert chosen == ["grouped_mm"] * 2
    model.save_pretrained(tmp_path)
    offsets = _file_offsets(tmp_path / "model.safetensors")
    assert any(offsets[k] % 16 for k in offsets if k.endswith(("w_enc", "w_dec")))  # the hazard
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert all(p.data_ptr() % 16 == 0 for p in loaded.parameters())
    chosen.clear()
    assert torch.equal(loaded(ids).logits, logits)
    assert chosen == ["grouped_mm"] * 2
