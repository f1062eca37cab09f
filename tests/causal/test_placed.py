"""A model split over the CPU and disk by accelerate (``--device_map`` / ``--max_memory``) gives
the causal results of the plain load: every intervention kind through ``intervene``, the ablation
sweep's table through ``moelens causal ablate``; a bad placement is a one-line error."""

from __future__ import annotations

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


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request, tmp_path_factory):
    """(plain model, split model, adapters) of one family saved to disk; the split one has
    decoder layers offloaded to disk."""
    path = tmp_path_factory.mktemp(request.param) / "model"
    model(request.param).save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    plain, _ = load_placed(str(path), resolve("cpu", "float32", None, [], None))
    with offload_dir(resolve(None, "float32", None, [_budget(path)], None)) as placement:
        split, _ = load_placed(str(path), placement)
        assert "disk" in split.hf_device_map.values(), split.hf_device_map
        yield plain, split


IDS = torch.randint(3, VOCAB, (2, 9), generator=torch.Generator().manual_seed(5))


def _logits(m, interventions):
    with torch.no_grad(), intervene(m, interventions) as session:
        logits = m(IDS).logits.float().cpu()
    return logits, session.hits


def _cases(adapter):
    layer = adapter.moe_layers()[-1]
    n = adapter.num_experts(layer)
    with torch.no_grad():
        counts = torch.zeros(n)
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
    """The unembedding and an expert's output recomputed from offloaded weights are the plain ones."""
    plain, split = pair
    a, b = get_adapter(plain), get_adapter(split)
    assert torch.equal(a.unembedding(), b.unembedding())
    layer = a.moe_layers()[-1]
    hidden = torch.randn(4, a.expert_width(layer), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(a.expert_output(layer, 1, hidden), b.expert_output(layer, 1, hidden).cpu(),
                              rtol=1e-5, atol=1e-6)


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
