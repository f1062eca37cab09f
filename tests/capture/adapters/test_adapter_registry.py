"""Registry, attach options and the experts-implementation independence of capture."""

from __future__ import annotations

import pytest
import torch

from moelens.capture.adapters import (
    HFAdapter,
    get_adapter,
    register,
    supported_families,
)
from moelens.errors import ConfigError, UnsupportedModelError

from .adapter_families import BY_NAME, build, cached
from .adapter_sink import RecordingSink, hook_count


class _FakeConfig:
    model_type = "no_such_family"


class _FakeModel(torch.nn.Module):
    config = _FakeConfig()


def test_unknown_family_names_supported_and_how_to_add():
    with pytest.raises(UnsupportedModelError) as err:
        get_adapter(_FakeModel())
    msg = str(err.value)
    assert "no_such_family" in msg and "olmoe" in msg and "gpt_oss" in msg and "register" in msg
    assert "\n" not in msg


def test_register_a_new_family():
    model = cached("llama")

    @register("my_llama_clone")
    class MyAdapter(HFAdapter):
        """A family added from outside the package."""

    try:
        assert "my_llama_clone" in supported_families()
        model.config.model_type = "my_llama_clone"
        assert isinstance(get_adapter(model), MyAdapter)
    finally:
        model.config.model_type = "llama"
        from moelens.capture.adapters.registry import _REGISTRY

        _REGISTRY.pop("my_llama_clone")


def test_attach_subset_emits_only_what_was_asked(input_ids):
    model = cached("deepseek_v3")  # layer 0 dense, layers 1-2 MoE with shared experts
    adapter = get_adapter(model)
    sink = RecordingSink()
    with torch.no_grad(), adapter.attach(sink, layers=[2], spaces=["expert_gate"]):
        model(input_ids)
    assert sink.names() == {("routing", 2), ("expert_rows", 2)}
    sink = RecordingSink()
    with torch.no_grad(), adapter.attach(sink, layers=[0, 1], spaces=["ffn", "shared"]):
        model(input_ids)
    assert sink.names() == {("ffn", 0), ("shared", 1)}


def test_attach_rejects_bad_layers_and_spaces():
    adapter = get_adapter(cached("olmoe"))
    with pytest.raises(ConfigError, match="out of range"):
        adapter.attach(RecordingSink(), layers=[5], spaces=["expert"])
    with pytest.raises(ConfigError, match="unknown unit space"):
        adapter.attach(RecordingSink(), layers=[0], spaces=["neurons"])
    with pytest.raises(ConfigError, match="out of range"), adapter.stop_after(-1):
        pass


def test_second_attach_on_same_experts_is_refused_and_first_survives(input_ids):
    model = cached("olmoe")
    adapter = get_adapter(model)
    before = hook_count(model)
    with adapter.attach(RecordingSink(), spaces=["expert"]):
        with pytest.raises(RuntimeError, match="already captured"):
            adapter.attach(RecordingSink(), spaces=["resid", "expert"])
        assert "forward" in vars(adapter.experts(0))
    assert hook_count(model) == before


@pytest.mark.parametrize("impl", ["eager", "batched_mm", "grouped_mm"])
def test_capture_exact_under_every_experts_implementation(impl, input_ids):
    model = build(BY_NAME["qwen2_moe"], experts_implementation=impl)
    assert model.config._experts_implementation == impl
    adapter = get_adapter(model)
    sink = RecordingSink()
    with torch.no_grad():
        ref = model(input_ids).logits
        with adapter.attach(sink):
            got = model(input_ids).logits
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    assert ("expert_rows", 2) in sink.names()


def test_relu_experts_are_flagged_sparse(input_ids):
    model = build(BY_NAME["olmoe"], hidden_act="relu")
    adapter = get_adapter(model)
    assert adapter.expert_act_is_sparse(0)
    assert not get_adapter(cached("olmoe")).expert_act_is_sparse(0)
    assert not get_adapter(cached("gpt_oss")).expert_act_is_sparse(0)
    sink = RecordingSink()
    with torch.no_grad(), adapter.attach(sink, layers=[0], spaces=["expert"]):
        model(input_ids)
    hidden = sink.one("expert_rows", 0)[2]
    assert 0.2 < (hidden == 0).float().mean() < 0.8  # ReGLU: zero wherever the gate is negative


def test_inputs_in_a_batch_are_flattened_row_major(input_ids):
    """Token n of the records is (batch n // seq, position n % seq): capture one row alone."""
    model = cached("mixtral")
    adapter = get_adapter(model)
    full, single = RecordingSink(), RecordingSink()
    with torch.no_grad():
        with adapter.attach(full, spaces=["expert", "resid"]):
            model(input_ids)
        with adapter.attach(single, spaces=["expert", "resid"]):
            model(input_ids[1:])
    seq = input_ids.shape[1]
    torch.testing.assert_close(full.one("resid", 1)[0][seq:], single.one("resid", 1)[0], rtol=0, atol=1e-5)
    assert torch.equal(full.one("routing", 1)[0][seq:], single.one("routing", 1)[0])


def test_ernie_without_shared_experts_reports_and_emits_none(input_ids):
    model = build(BY_NAME["ernie4_5_moe"], moe_num_shared_experts=0)
    adapter = get_adapter(model)
    assert adapter.moe_layers() == [1, 2] and adapter.shared_width(1) == 0
    sink = RecordingSink()
    with torch.no_grad(), adapter.attach(sink, spaces=["shared", "expert"]):
        model(input_ids)
    assert sink.names() == {("routing", 1), ("expert_rows", 1), ("routing", 2), ("expert_rows", 2)}
