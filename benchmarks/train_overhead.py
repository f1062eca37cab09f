"""Overhead of the ``moelens train`` loop over a bare forward/backward/AdamW loop.

Both train the same small MoE-X (``moelens.models``) on the same number of steps and tokens, on
one CPU thread, in this process. The trainer adds window sampling from a memmap, loss
bookkeeping, gradient clipping, the learning-rate schedule, metrics lines and a validation pass
at the end (its checkpoint/model writing is included too). Prints ``name: ratio`` lines
(trainer time / bare time; 1.0 = no overhead).

    PYTHONPATH=src python benchmarks/train_overhead.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from moelens.models import MoelensForCausalLM
from moelens.models.presets import model_config
from moelens.training.command import ModelSpec, TrainConfig, run

STEPS, BATCH, CTX = 30, 8, 255
SPEC = dict(n_layer=2, n_head=4, n_embd=128, num_experts=8, top_k=2, expert_width=128)


def write_tokens(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 1024 * 400), ("val", 1024 * 20)):
        rng.integers(0, 32, n, dtype=np.uint8).tofile(root / f"{split}.bin")
    meta = {"format": "moelens-tokens", "version": 1, "kind": "chess", "dtype": "uint8",
            "vocab_size": 32, "block_size": 1024, "tokenizer": "chess", "n_train": 1024 * 400,
            "n_val": 1024 * 20, "source": {"benchmark": True}, "seed": 0}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def bare(tokens: np.ndarray) -> float:
    torch.manual_seed(0)
    model = MoelensForCausalLM(model_config("moex", vocab_size=32, **SPEC))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(STEPS):
        offs = rng.integers(0, len(tokens) - CTX - 1, BATCH)
        rows = torch.from_numpy(np.stack([tokens[o:o + CTX + 1] for o in offs]).astype(np.int64))
        out = model(input_ids=rows[:, :-1])
        loss = F.cross_entropy(out.logits.reshape(-1, 32), rows[:, 1:].reshape(-1)) + out.aux_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def trainer(data: Path, out: Path) -> float:
    cfg = TrainConfig(data=data, out=out, model=ModelSpec(preset="moex", **SPEC), ctx=CTX,
                      batch_size=BATCH, max_iters=STEPS, eval_interval=0, eval_iters=1,
                      log_interval=10, ckpt_interval=10, device="cpu", dtype="fp32", quiet=True)
    start = time.perf_counter()
    run(cfg)
    return time.perf_counter() - start


if __name__ == "__main__":
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_tokens(Path(tmp))
        tokens = np.fromfile(data / "train.bin", dtype=np.uint8)
        bare(tokens)  # warm-up: imports, allocator
        times_bare, times_train = [], []
        for i in range(3):  # interleaved, best of 3: the machine may be shared
            times_bare.append(bare(tokens))
            times_train.append(trainer(data, Path(tmp) / f"run{i}"))
        t_bare, t_train = min(times_bare), min(times_train)
    print(f"bare_loop_seconds: {t_bare:.2f}")
    print(f"trainer_seconds: {t_train:.2f}")
    print(f"train_loop_vs_bare_step: {t_train / t_bare:.3f}")
