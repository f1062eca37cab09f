"""Every command block of README.md runs, in order, as a user would type it.

The commands are taken from the README itself (so a command edited there is the command tested),
with sizes made tiny: numbers of games, tokens, iterations and model widths are replaced or
appended (:data:`SIZES`, :func:`_shrink`); commands, paths and every other flag stay as written.
The files a user would bring (``games.pgn``, ``corpus/``, ``docs/*.txt``, ``path/to/olmoe``) are
made in the working directory first. ``make`` targets run the commands that ``make -n`` prints
for them (the install step is skipped: the suite runs after it), and ``make test`` is this suite.
The hub example cannot run offline or without a GPU: its hub id is replaced by a tiny local model
of the same family (:data:`HUB_STANDINS`) and ``--device cuda`` by ``--device cpu``; every other
word of it runs as written.
"""

from __future__ import annotations

import glob
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import ROOT, cli_env

from .e2e_helpers import bpe_tokenizer, write_corpus

README = ROOT / "README.md"

SIZES = {"--n_games": "40", "--tokens": "3000", "--vocab_size": "300", "--max_iters": "4",
         "--max_docs_per_source": "15", "--steps": "20"}
"""Flags whose value is a size: replaced where the README gives them."""

TRAIN_SIZES = ["--model.n_layer", "2", "--model.n_head", "2", "--model.n_embd", "64",
               "--model.expert_width", "64", "--model.ffn_width", "128", "--batch_size", "2",
               "--eval_interval", "4", "--eval_iters", "1", "--log_interval", "2",
               "--ckpt_interval", "0", "--device", "cpu", "--quiet"]
"""Appended to every ``train`` (model size and evaluation work only)."""

APPENDED = {
    "train": TRAIN_SIZES,
    "data corpora": ["--max_docs_per_source", "15", "--pos_docs_per_source", "5", "--quiet"],
    "data chess": ["--workers", "1", "--quiet"],
    "probe": ["--bootstrap", "50", "--quiet"],
    "capture": ["--quiet"],
    "quickstart": ["--preset", "quickstart-tiny", "--games.workers", "1", "--quiet"],
    "specialize": ["--quiet"],
    "causal": ["--quiet"],
    "boardgame": ["--quiet"],
    "sae train": ["--batch_size", "128", "--quiet"],
    "lens": ["--quiet"],
    "interpret": ["--n_explain", "10", "--n_test", "10", "--n_negative", "10", "--bootstrap", "50", "--quiet"],
}

HUB_STANDINS = {"allenai/OLMoE-1B-7B-0125": "path/to/olmoe"}
"""Hub models of the README -> the tiny local model of the same family made by the test."""

PGN = """[Event "a"]

1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 5. O-O Be7 *

[Event "b"]

1. d4 d5 2. c4 e6 3. Nc3 Nf6 4. Bg5 Be7 5. e3 O-O 1-0
"""


def readme_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks, continuation lines joined, comments dropped."""
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(shlex.join(words))
    return out


def _subcommand(words: list[str]) -> str | None:
    """'train', 'data chess', ... for a moelens command (also under torchrun), else None."""
    if "moelens" not in words:
        return None
    rest = words[words.index("moelens") + 1:]
    if rest[:1] in (["data"], ["store"], ["sae"]) and len(rest) > 1:
        return " ".join(rest[:2])
    return rest[0] if rest else None


def _shrink(words: list[str]) -> list[str]:
    """Replace size values and append the tiny-size flags of the command's kind."""
    words = [HUB_STANDINS.get(w, w) for w in words]
    for i, w in enumerate(words[:-1]):
        if w in SIZES and words[i + 1] != "0":
            words[i + 1] = SIZES[w]
        if w == "--device" and words[i + 1] == "cuda":
            words[i + 1] = "cpu"
    sub = _subcommand(words)
    extra = list(APPENDED.get(sub or "", []))
    if sub == "train" and "--preset" in words:
        extra += ["--max_iters", SIZES["--max_iters"]]  # the preset sets it; only shrink it
    return words + extra


def _argv(words: list[str], cwd: Path) -> list[str]:
    """Executable words: moelens/torchrun through this interpreter, globs expanded in cwd."""
    out: list[str] = []
    for w in words:
        if any(c in w for c in "*?[") and not w.startswith(("regex:", "'")):
            hits = sorted(glob.glob(w, root_dir=cwd))
            out += hits or [w]
        else:
            out.append(w)
    head = {"moelens": [sys.executable, "-m", "moelens"],
            "torchrun": [sys.executable, "-m", "torch.distributed.run"]}
    return head.get(out[0], [out[0]]) + out[1:]


def _make_commands(target: str) -> list[list[str]]:
    """What ``make TARGET`` runs, from ``make -n``, without its ``install`` prerequisite."""
    install = subprocess.run(["make", "-n", "install"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    lines = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    cmds = []
    for line in lines:
        if line in install or not line.strip():
            continue
        words = shlex.split(line)
        if words[1:3] == ["-m", "moelens"]:
            words = ["moelens"] + words[3:]
        cmds.append(words)
    return cmds


def _make_inputs(cwd: Path) -> None:
    """The files a README user brings, at the README's paths."""
    import torch
    from transformers import OlmoeConfig, OlmoeForCausalLM

    (cwd / "games.pgn").write_text(PGN)
    texts = [p.read_text() for p in write_corpus(cwd / "corpus", n_prose=8, n_code=4)]
    write_corpus(cwd / "docs", n_prose=10, n_code=4, seed=1)
    tok = bpe_tokenizer(texts)
    cfg = OlmoeConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=16,
                      num_attention_heads=4, num_key_value_heads=4, intermediate_size=64,
                      num_experts=4, num_experts_per_tok=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.bos_token_id)
    torch.manual_seed(0)  # test-only: seeded tiny weights
    OlmoeForCausalLM(cfg).eval().save_pretrained(cwd / "path/to/olmoe")
    tok.save_pretrained(cwd / "path/to/olmoe")


def test_readme_lists_the_commands_it_documents():
    cmds = readme_commands(README.read_text())
    subs = {_subcommand(shlex.split(c)) for c in cmds}
    assert {"data chess", "data text", "train", "eval", "upcycle", "capture", "probe",
            "store verify", "data corpora", "specialize", "causal", "sae train", "boardgame",
            "lens", "interpret", "report"} <= subs
    assert any(c.startswith("make ") for c in cmds)
    assert not [c for c in cmds if "…" in c or "..." in c], "a README command must be runnable"


def test_shrink_replaces_sizes_only():
    words = shlex.split("moelens train --preset quickstart-moex --data d --out o")
    got = _shrink(words)
    assert got[:8] == words and got[8:10] == ["--model.n_layer", "2"]
    assert got[-2:] == ["--max_iters", "4"]
    no_preset = _shrink(shlex.split("moelens train --data d --out o --model.preset dense-gelu"))
    assert "--max_iters" not in no_preset  # the README must give it itself
    assert _shrink(["moelens", "data", "chess", "--n_games", "0"])[4] == "0"


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    _make_inputs(tmp_path)
    ran = []
    for cmd in readme_commands(README.read_text()):
        words = shlex.split(cmd)
        if words[0] == "make":
            if words[1] == "test":
                continue  # this very suite
            batch = _make_commands(words[1])
            assert batch, f"'make -n {words[1]}' runs nothing"
        else:
            batch = [words]
        for w in batch:
            argv = _argv(_shrink(w), tmp_path)
            proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=600, env=cli_env())
            assert proc.returncode == 0, f"README command failed: {cmd}\n{proc.stderr[-3000:]}"
            ran.append(shlex.join(w))
    assert len(ran) >= 15
    assert (tmp_path / "runs/compare").is_dir() and any((tmp_path / "runs/compare").iterdir())
    assert (tmp_path / "runs/upcycled").is_dir()
    assert (tmp_path / "runs/quickstart/report/report.html").is_file()
    assert (tmp_path / "runs/olmoe/report.html").is_file()
