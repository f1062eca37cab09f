"""A model split over the CPU and disk by accelerate (``--device_map`` / ``--max_memory``) gives
the causal results of the plain load: every intervention kind through ``intervene`` (and its
float32 block), weights read directly, the batched sweep, the tables of ``moelens causal ablate``
and ``causal trigger``; a bad placement is a one-line error."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from clitools import assert_user_error, run_cli

from moelens import cli
from moelens.analysis.causal import Intervention, intervene
from moelens.capture.adapters import get_adapter
from moelens.capture.placed import load_placed, offload_dir
from moelens.capture.placement import largest_layer_bytes, resolve

from .family_models import VOCAB, model
from .planted import char_tokenizer

FAMILIES = ["moelens_switch", "olmoe", "qwen2_moe"]
"""A moelens model and two HF families (one with a shared expert), split over CPU and disk."""


def _budget(path) -> str:
    """A cpu budget that holds the largest decoder layer and little more: the rest goes to disk."""
    from transformers import AutoConfig

    import moelens.models  # noqa: F401  (registers the moelens config with the Auto classes)

    need, _ = largest_layer_bytes(AutoConfig.from_pretrained(path), "float32")
    return f"cpu={need + 2048}"


def _mixed_map(m) -> dict[str, str]:
    """A device map with the decoder layers alternately on disk and on the CPU (the first on
    disk) and the final norm on disk; the embeddings and the head stay on the CPU."""
    adapter = get_adapter(m)
    names = {id(mod): name for name, mod in m.named_modules()}
    layers = adapter.decoder_layers() if hasattr(adapter, "decoder_layers") else m.transformer.h
    stack, final_norm = names[id(layers[0])].rsplit(".", 1)[0], names[id(adapter.final_norm())]
    parent = stack.rsplit(".", 1)[0]
    out: dict[str, str] = {}
    for name, child in m.named_children():
        subs = [f"{name}.{sub}" for sub, _ in child.named_children()] if name == parent else [name]
        for full in subs:
            if full == stack:
                out.update({f"{stack}.{i}": "disk" if i % 2 == 0 else "cpu" for i in range(len(layers))})
            else:
                out[full] = "disk" if full == final_norm else "cpu"
    return out


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request, tmp_path_factory):
    """(plain model, split model) of one family saved to disk; the split one runs its decoder
    layers alternately from disk and the CPU (an explicit --device_map)."""
    path = tmp_path_factory.mktemp(request.param) / "model"
    model(request.param).save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    plain, _ = load_placed(str(path), resolve("cpu", "float32", None, [], None))
    device_map = json.dumps(_mixed_map(plain))
    with offload_dir(resolve(None, "float32", device_map, [], None)) as placement:
        split, _ = load_placed(str(path), placement)
        assert sorted(set(split.hf_device_map.values())) == ["cpu", "disk"], split.hf_device_map
        assert any(p.device.type == "meta" for p in split.parameters())  # offloaded between forwards
        yield plain, split


IDS = torch.randint(3, VOCAB, (2, 9), generator=torch.Generator().manual_seed(5))


def _logits(m, interventions):
    with torch.no_grad(), intervene(m, interventions) as session:
        logits = m(IDS).logits.float().cpu()
    return logits, session.hits


def _cases(adapter):
    """One intervention of each kind on the busiest expert of the first MoE layer (on disk)."""
    layer = adapter.moe_layers()[0]
    n = adapter.num_experts(layer)
    with torch.no_grad():
        sink = _Routing()
        with adapter.attach(sink, [layer], spaces=["expert"]):
            adapter.model(IDS)
        counts = torch.bincount(sink.ids.reshape(-1), minlength=n)
    e = int(counts.argmax())
    other = (e + 1) % n
    mean = torch.linspace(-1, 1, adapter.hidden_size)
    return [Intervention(layer, e, "zero"), Intervention(layer, e, "remove"),
            Intervention(layer, e, "reroute", to=other), Intervention(layer, e, "mean", mean=mean),
            Intervention(layer, e, "scale", value=3.0), Intervention(layer, other, "force_logit", value=30.0)]


class _Routing:
    def routing(self, layer, ids, weights):
        self.ids = ids.cpu()

    def __getattr__(self, name):  # every other capture callback: ignored
        return lambda *a: None


def test_every_intervention_on_a_split_model_matches_the_plain_model(pair):
    plain, split = pair
    stock, _ = _logits(plain, [])
    assert torch.equal(_logits(split, [])[0], stock)
    for iv in _cases(get_adapter(plain)):
        want, hits = _logits(plain, [iv])
        got, split_hits = _logits(split, [iv])
        scale = (want - stock).abs().max().item()
        assert scale > 1e-3, f"{iv.describe()} changed nothing on the plain model"
        assert (got - want).abs().max().item() <= 1e-4 * scale, iv.describe()
        assert split_hits == hits, iv.describe()


def test_weights_read_directly_are_loaded_from_disk(pair):
    """The unembedding, the final norm's linear share and an expert's output recomputed from
    offloaded weights (the first MoE layer and the final norm are on disk) are the plain ones."""
    plain, split = pair
    a, b = get_adapter(plain), get_adapter(split)
    assert torch.equal(a.unembedding(), b.unembedding())
    layer = a.moe_layers()[0]
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, a.expert_width(layer), generator=gen)
    resid, part = torch.randn(2, 4, a.hidden_size, generator=gen)
    with torch.no_grad():
        assert torch.allclose(a.expert_output(layer, 1, hidden), b.expert_output(layer, 1, hidden).cpu(),
                              rtol=1e-5, atol=1e-6)
        assert torch.allclose(a.final_norm_linear(resid, part), b.final_norm_linear(resid, part).cpu(),
                              rtol=1e-5, atol=1e-6)


def test_batched_sweep_on_a_split_model_matches_the_plain_model(pair):
    """The sweep restarts the model from an ablated layer's residual (``run_from``) and recomputes
    the block's update from recorded tensors: both on layers that run from disk."""
    from moelens.analysis.causal.means import mean_outputs
    from moelens.analysis.causal.sweep import Cell, sweep

    from .test_sweep import assert_rows_close, tiny_windows

    plain, split = pair
    windows = tiny_windows()
    rows = {}
    for name, m in (("plain", plain), ("split", split)):
        adapter = get_adapter(m)
        first = adapter.moe_layers()[0]
        cells = [Cell(first, e) for e in range(adapter.num_experts(first))]
        means = {l: v[0] for l, v in mean_outputs(m, adapter, windows.batches, [first]).items()}
        with torch.no_grad():
            rows[name] = [sweep(m, adapter, windows, cells, ablation=a, group_size=3, means=means, tail_tokens=12)
                          for a in ("remove", "mean")]
    for got, want in zip(rows["split"], rows["plain"]):
        assert any(r["status"] == "tested" for r in want)
        assert_rows_close(got, want)


def test_fp32_block_on_a_split_bfloat16_model(planted_dirs):
    """``intervene(fp32=True)`` runs a split bfloat16 model in float32 (offloaded weights are cast
    as they load) and leaves it as it was."""
    path = str(planted_dirs["two_layers"])
    ids = IDS % 29
    iv = [Intervention(1, 2, "remove")]
    plain, _ = load_placed(path, resolve("cpu", "float32", None, [], None))
    with torch.no_grad(), intervene(plain, iv):
        want = plain(ids).logits
    with offload_dir(resolve(None, "bfloat16", None, [_budget(path)], None)) as placement:
        split, _ = load_placed(path, placement)
        assert "disk" in split.hf_device_map.values()
        with torch.no_grad():
            before = split(ids).logits
            with intervene(split, iv, fp32=True):
                got = split(ids).logits
            after = split(ids).logits
    assert got.dtype == torch.float32 and {p.dtype for p in split.parameters()} == {torch.bfloat16}
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() <= 0.01 * scale  # bf16 rounding of the weights only
    assert (before.float() - want).abs().max().item() > 0.05 * scale  # a bf16 forward is far off
    assert torch.equal(after, before)


def test_trigger_with_a_device_map_writes_the_plain_table(planted_dirs, tmp_path, capsys):
    import json

    from .test_trigger import OTHER, WIRED

    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(WIRED + OTHER))
    args = ["causal", "trigger", "--model", str(planted_dirs["trigger"]), "--cases", str(cases)]
    assert cli.main([*args, "--quiet", "--out", str(tmp_path / "plain")]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "split"), "--max_memory",
                     _budget(planted_dirs["trigger"])]) == 0
    assert "on disk" in capsys.readouterr().out  # the decoder layer runs from disk
    plain = pd.read_csv(tmp_path / "plain" / "trigger.csv")
    split = pd.read_csv(tmp_path / "split" / "trigger.csv")
    assert split.drop(columns="dla").equals(plain.drop(columns="dla"))
    assert (plain["rank"] == 1).sum() == 6
    want, got = plain["dla"].dropna(), split["dla"].dropna()
    assert len(want) == len(got) > 0 and (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.fixture(scope="module")
def ablate_args(planted_dirs):
    return ["causal", "ablate", "--model", str(planted_dirs["two_layers"]), "--corpus",
            str(planted_dirs["alpha"]), str(planted_dirs["beta"]), "--ctx", "16", "--no-figures",
            "--threads", "1"]


@pytest.mark.parametrize("ablation", ["remove", "mean"])
def test_ablate_with_a_device_map_writes_the_plain_table(ablate_args, ablation, tmp_path, capsys):
    args = [*ablate_args, "--ablation", ablation]
    threads = torch.get_num_threads()
    try:
        assert cli.main([*args, "--quiet", "--out", str(tmp_path / "plain")]) == 0
        # 16 KB holds the embedding and the (tied) head; both decoder layers run from disk
        assert cli.main([*args, "--out", str(tmp_path / "split"), "--device_map", "auto",
                         "--max_memory", "cpu=16KB"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "on disk" in capsys.readouterr().out
    plain = pd.read_csv(tmp_path / "plain" / "ablate.csv")
    split = pd.read_csv(tmp_path / "split" / "ablate.csv")
    assert list(split.columns) == list(plain.columns) and len(split) == len(plain) == 2 * 6 * 3
    assert split["tokens_routed"].tolist() == plain["tokens_routed"].tolist()
    tested = plain["status"] == "tested"
    assert tested.sum() > 5
    for col in ("delta_loss", "kl", "delta_loss_routed"):
        want, got = plain.loc[tested, col], split.loc[tested, col]
        scale = want.abs().max()
        assert scale > 0 and not math.isnan(scale)
        assert (got - want).abs().max() <= 1e-4 * scale, col


def test_bad_placement_is_a_one_line_error(planted_dirs, tmp_path):
    base = ["--model", planted_dirs["domain"], "--corpus", planted_dirs["alpha"], "--out", tmp_path / "bad"]
    assert_user_error(run_cli("causal", "ablate", *base, "--device", "cpu", "--device_map", "auto"),
                      "--device", "not both")
    assert not (tmp_path / "bad").exists()
