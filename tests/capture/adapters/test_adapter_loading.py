"""``load_model``: local directories offline, safetensors only, one-line errors."""

from __future__ import annotations

import pytest
import torch

from moelens.capture.adapters import get_adapter, load_model
from moelens.errors import CheckpointError

from .adapter_families import BY_NAME, build


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<s>": 2, **{f"w{i}": i for i in range(3, 128)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="<s>")


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_olmoe")
    build(BY_NAME["olmoe"]).save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


def test_loads_local_dir_in_eval_mode(saved_dir):
    model, tokenizer = load_model(saved_dir)
    assert not model.training and model.dtype == torch.float32
    assert get_adapter(model).moe_layers() == [0, 1]
    ids = tokenizer("w5 w6 w7", return_tensors="pt").input_ids
    assert ids.tolist() == [[5, 6, 7]]
    reference = build(BY_NAME["olmoe"])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=1e-6)


def test_dtype_is_honoured(saved_dir):
    model, _ = load_model(str(saved_dir), dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    with pytest.raises(CheckpointError, match="unknown dtype"):
        load_model(saved_dir, dtype="float8")


def test_missing_dir_and_missing_config(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tmp_path)


def test_pickle_weights_are_refused(tmp_path, saved_dir):
    """Only safetensors are read: a directory holding just a pickled state dict does not load."""
    model, _ = load_model(saved_dir)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path)
    assert str(err.value).startswith(f"cannot load model {tmp_path}") and "\n" not in str(err.value)
