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


def _capture_args(tmp_path, model: str) -> list[str]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("w5 w6 w7 w8\n")
    return ["capture", "--model", model, "--corpus", str(corpus), "--out", str(tmp_path / "out"), "--quiet"]


def test_unknown_model_type_names_the_supported_families(tmp_path):
    from clitools import assert_user_error, run_cli

    from moelens.capture.adapters import supported_families
    from moelens.errors import UnsupportedModelError

    model_dir = tmp_path / "foo_model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "foo", "hidden_size": 8}')
    proc = run_cli(*_capture_args(tmp_path, str(model_dir)))
    assert_user_error(proc, "model_type 'foo'", "transformers", "supported: " + ", ".join(supported_families()),
                      "register('foo')", "AutoModelForCausalLM.register")
    with pytest.raises(UnsupportedModelError, match="model_type 'foo'"):
        load_model(model_dir)
    assert not (tmp_path / "out").exists()


def test_a_name_that_is_no_directory_fails_at_once_offline(tmp_path):
    from clitools import assert_user_error, run_cli

    proc = run_cli(*_capture_args(tmp_path, "nope_model"), cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert_user_error(proc, "'nope_model' is not a local directory", "HF_HUB_OFFLINE", "not looked up on the hub")
    assert "hub" not in proc.stdout and "Retry" not in proc.stderr


class _CountingListener:
    """A local TCP port that reads each request's first line and hangs up without answering:
    a hub that cannot be reached, which shows how many attempts were made."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                self.requests.append(conn.recv(4096).decode("latin-1").split("\r\n", 1)[0])
            except OSError:
                pass
            conn.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("hub", ["closed_port", "hangs_up"])
def test_a_name_that_is_no_directory_is_tried_once_on_the_hub(tmp_path, hub):
    """Online, the name is said not to be a directory, the hub is asked once (no retry loop), and
    the error names both readings on one line."""
    from clitools import assert_user_error, run_cli

    listener = _CountingListener() if hub == "hangs_up" else None
    endpoint = f"http://127.0.0.1:{listener.port}" if listener else "http://127.0.0.1:9"  # 9: discard, closed
    try:
        proc = run_cli(*_capture_args(tmp_path, "nope_model"), cwd=tmp_path,
                       env={"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": endpoint,
                            "HF_HOME": str(tmp_path / "hf_home")})
    finally:
        if listener:
            listener.close()
    assert_user_error(proc, "'nope_model' is not a local directory", f"not reachable on the hub {endpoint}")
    assert "nope_model is not a local directory; looking it up on the hub" in proc.stdout
    assert "Retry" not in proc.stdout + proc.stderr
    if listener:  # (huggingface_hub may also ask for other things; the model is asked for once)
        asked = [r for r in listener.requests if "nope_model" in r]
        assert asked == ["HEAD /nope_model/resolve/main/config.json HTTP/1.1"], listener.requests
