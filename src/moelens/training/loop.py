"""The training loop: one readable function per phase, single process or torchrun DDP.

Everything random is derived from ``cfg.seed``: the model is initialised and dropout runs inside
``torch.random.fork_rng`` (the caller's global RNG is untouched), data windows are a function
of (seed, step). With the optimizer state and RNG states in every checkpoint, a run that is
killed and resumed ends with the same weights as one that never stopped (bitwise on CPU).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from moelens.errors import CheckpointError, ConfigError, DataError
from moelens.rundir import Stage, atomic_write_json
from moelens.training import backend as backend_mod
from moelens.training import checkpoint, ddp, stage
from moelens.training.lm import (
    autocast,
    cross_entropy_sum,
    forward_losses,
    resolve_bf16,
    resolve_device,
)
from moelens.training.metrics import MetricsLog, moe_layers, moe_stats
from moelens.training.optim import make_optimizer
from moelens.training.sampler import BatchPlan, WindowSampler, train_offsets, val_offsets
from moelens.training.schedule import lr_at


@dataclass
class Setup:
    """Everything a run needs, resolved and validated before anything is written."""

    cfg: Any
    env: ddp.DistEnv
    device: torch.device
    bf16: bool
    tokens: Any
    train: WindowSampler
    val: WindowSampler
    total: int


def _setup(cfg: Any, backend: backend_mod.Backend) -> Setup:
    env = ddp.from_environment()
    ddp.check_batch(env, cfg.batch_size)
    if not Path(cfg.data).is_dir():
        raise DataError(f"data directory {cfg.data} does not exist; create it with 'moelens data "
                        "chess' or 'moelens data text', or fix --data")
    if cfg.init_from is not None:
        if not Path(cfg.init_from).is_dir():
            raise CheckpointError(f"--init_from {cfg.init_from} does not exist; give a saved model "
                                  "directory")
        if cfg.model.overrides():
            raise ConfigError("--init_from keeps the saved model's architecture; drop the --model.* "
                              "settings")
    tokens = backend.open_tokens(Path(cfg.data))
    block = tokens.meta.get("block_size")
    train = WindowSampler(tokens.train, cfg.ctx, block)
    val = WindowSampler(tokens.val, cfg.ctx, block)
    for name, s in (("train", train), ("val", val)):
        if s.n_windows < 1:
            raise DataError(f"the {name} split of {cfg.data} has {len(s.tokens)} tokens, too few "
                            f"for one window of ctx+1={cfg.ctx + 1}; lower --ctx or make more data")
    device = resolve_device(cfg.device, env.local_rank)
    return Setup(cfg, env, device, resolve_bf16(cfg.dtype, device), tokens, train, val,
                 cfg.total_iters)


def _make_model(s: Setup, backend: backend_mod.Backend) -> nn.Module:
    cfg, vocab = s.cfg, int(s.tokens.meta["vocab_size"])
    torch.manual_seed(cfg.seed)  # inside fork_rng: scoped to this run
    if cfg.init_from is not None:
        model = backend.load_model(Path(cfg.init_from))
        mcfg = getattr(model, "config", None)
        if getattr(mcfg, "vocab_size", vocab) < vocab:
            raise ConfigError(f"the model in {cfg.init_from} has vocab_size {mcfg.vocab_size}, below "
                              f"the data's {vocab}; use data made with the model's tokenizer")
        if getattr(mcfg, "n_positions", cfg.ctx) < cfg.ctx:
            raise ConfigError(f"the model in {cfg.init_from} accepts {mcfg.n_positions} positions; "
                              f"lower --ctx to at most that")
    else:
        model = backend.build_model(cfg.model, vocab, cfg.ctx)
    return model.to(s.device)


@dataclass
class Outcome:
    """What :func:`train` did, for the command to report (only the main process reports)."""

    status: Literal["skipped", "stopped", "finished"]
    """skipped: the run had finished before; stopped: --stop_after left a checkpoint; finished"""
    out: Path
    """the run directory"""
    step: int
    """optimizer steps done so far"""
    total: int
    """optimizer steps of the whole run"""
    is_main: bool
    """whether this is the process that writes files and reports (rank 0)"""
    summary: dict[str, Any] = field(default_factory=dict)
    """the run's summary.json (finished or skipped runs): val_loss, val_perplexity, tokens, model"""


def train(cfg: Any, backend: backend_mod.Backend | None = None) -> Outcome:
    """Train, resume or skip as ``cfg`` says; see :mod:`moelens.training.command` for the run
    directory layout."""
    backend = backend or backend_mod.default_backend()
    cfg.check_paths()
    decision = stage.decide(cfg)  # read-only; a finished run is skipped without reading data
    if decision == "skip":
        done = stage.finished_summary(cfg.out)
        return Outcome("skipped", Path(cfg.out), int(done.get("iters") or 0),
                       int(done.get("iters") or 0), ddp.from_environment().is_main, done)
    s = _setup(cfg, backend)
    ddp.init(s.env, s.device)
    threads = torch.get_num_threads()
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    try:
        devices = [s.device] if s.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return _train(s, backend, decision)
    finally:
        torch.set_num_threads(threads)
        ddp.shutdown(s.env)


def _train(s: Setup, backend: backend_mod.Backend, decision: str) -> Outcome:
    cfg, env, device = s.cfg, s.env, s.device
    out = Path(cfg.out)
    raw = _make_model(s, backend)
    env.barrier()  # every process has read the run directory before rank 0 changes it
    if env.is_main:
        stage.begin(cfg)
    env.barrier()
    opt = make_optimizer(raw, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), device.type)
    log = MetricsLog(out)
    step = 0
    if decision == "resume" and checkpoint.latest_step(out) is not None:
        state = checkpoint.load(out, raw, opt, device)
        step = int(state["step"])
        rngs = state["rng"]
        if len(rngs) == env.world_size:
            checkpoint.set_rng_state(rngs[env.rank], device)
        else:  # resumed with another process count: dropout continues from a derived seed
            torch.manual_seed(cfg.seed * 1_000_003 + step * 101 + env.rank)
    else:
        torch.manual_seed(cfg.seed + 1 + env.rank)  # the dropout stream of this process
    if env.is_main:
        log.truncate_after(step if step else -1)
    env.barrier()
    layers = moe_layers(raw)
    ddp.share_routing_stats(list(layers.values()), env)
    model = ddp.wrap(raw, env, device, has_moe=bool(layers))
    model.train()
    plan = BatchPlan(cfg.batch_size, cfg.grad_accum, env.rank, env.world_size)
    vals = val_offsets(s.val, cfg.batch_size, cfg.eval_iters, cfg.seed)
    vals = np.concatenate([plan.local(b, 0) for b in vals.reshape(cfg.eval_iters, cfg.batch_size)])

    def validate() -> float:
        total, count = cross_entropy_sum(raw, s.val, vals, plan.local_batch, device, s.bf16)
        total, count = env.sum([total, float(count)], device)
        return total / count

    val_loss, val_start = None, next((r.get("val_loss") for r in log.read() if r["iter"] == 0), None)
    if step == 0 and cfg.eval_interval:
        val_loss = val_start = validate()
        if env.is_main:
            log.write({"iter": 0, "tokens": 0, "val_loss": val_loss})
    bar = tqdm(total=s.total, initial=step, desc="train", unit="step", dynamic_ncols=True,
               disable=cfg.quiet or not env.is_main)
    tick, tick_step, started, loss = time.perf_counter(), step, time.perf_counter(), math.nan
    while step < s.total:
        lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, s.total)
        for g in opt.param_groups:
            g["lr"] = lr
        logs_next = (step + 1) % cfg.log_interval == 0 or step + 1 == s.total
        for mlp in layers.values():  # router statistics only where a metrics line uses them
            mlp.record_stats = logs_next
        sums, grad_norm = _step(model, raw, opt, s, plan, step)
        step += 1
        bar.update(1)
        is_log = step % cfg.log_interval == 0 or step == s.total
        is_val = (cfg.eval_interval and step % cfg.eval_interval == 0) or step == s.total
        if is_log or is_val:
            loss, ce, aux = (v / (cfg.grad_accum * env.world_size)
                             for v in env.sum([t.item() for t in sums], device))
            now = time.perf_counter()
            record = {"iter": step, "tokens": step * cfg.tokens_per_iter, "loss": loss, "ce": ce,
                      "aux_loss": aux, "lr": lr,
                      "grad_norm": None if grad_norm is None else grad_norm.item(),
                      "tokens_per_s": (step - tick_step) * cfg.tokens_per_iter / max(now - tick, 1e-9)}
            tick, tick_step = now, step
            if is_val:
                val_loss = record["val_loss"] = validate()
            if layers:
                record["moe"] = moe_stats(layers)
            if env.is_main:
                log.write(record)
            bar.set_postfix(loss=f"{loss:.4f}", **({"val": f"{val_loss:.4f}"} if is_val else {}))
        stop = cfg.stop_after is not None and step >= cfg.stop_after and step < s.total
        if step < s.total and ((cfg.ckpt_interval and step % cfg.ckpt_interval == 0) or stop):
            _save_checkpoint(out, step, raw, opt, env, device)
        if stop:
            bar.close()
            return Outcome("stopped", out, step, s.total, env.is_main)
    bar.close()
    if val_loss is None:
        val_loss = validate()
    summary: dict[str, Any] = {}
    if env.is_main:
        summary = _finish(s, raw, loss, val_loss, val_start, time.perf_counter() - started)
    env.barrier()
    return Outcome("finished", out, step, s.total, env.is_main, summary)


def _step(model: nn.Module, raw: nn.Module, opt: torch.optim.Optimizer, s: Setup, plan: BatchPlan,
          step: int) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """One optimizer step over ``grad_accum`` micro-batches; returns summed losses and grad norm."""
    cfg, device = s.cfg, s.device
    offsets = train_offsets(s.train, plan, cfg.seed, step)
    sums = [torch.zeros((), device=device) for _ in range(3)]
    for micro in range(cfg.grad_accum):
        x, y = s.train.windows(plan.local(offsets, micro))
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with ddp.no_sync(model, micro == cfg.grad_accum - 1):
            with autocast(device, s.bf16):
                total, ce, aux = forward_losses(model, x, y)
            (total / cfg.grad_accum).backward()
        for acc, v in zip(sums, (total, ce, aux)):
            acc += v.detach()
    grad_norm = None
    if cfg.grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return sums, grad_norm


def _save_checkpoint(out: Path, step: int, raw: nn.Module, opt: torch.optim.Optimizer,
                     env: ddp.DistEnv, device: torch.device) -> None:
    rngs = env.gather(checkpoint.rng_state(device))
    if env.is_main:
        checkpoint.save(out, step, raw, opt, rngs)
    env.barrier()


def _finish(s: Setup, raw: nn.Module, loss: float, val_loss: float, val_start: float | None,
            seconds: float) -> dict[str, Any]:
    cfg, out = s.cfg, Path(s.cfg.out)
    meta = s.tokens.meta
    training = {"ctx": cfg.ctx, "data": str(cfg.data), "data_kind": meta.get("kind"),
                "vocab_size": meta.get("vocab_size"), "block_size": meta.get("block_size"),
                "iters": s.total, "tokens": s.total * cfg.tokens_per_iter, "val_loss": val_loss,
                "run": str(out)}
    model_dir = stage.save_model_dir(raw, s.tokens, Path(cfg.data), out, training)
    summary = {
        "iters": s.total, "tokens": s.total * cfg.tokens_per_iter, "train_loss": loss,
        "val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 700.0)),
        "val_loss_start": val_start, "model": str(model_dir),
        "parameters": sum(p.numel() for p in {id(p): p for p in raw.parameters()}.values()),
        "world_size": s.env.world_size, "device": str(s.device),
        "dtype": "bf16" if s.bf16 else "fp32", "seconds_this_session": round(seconds, 2),
    }
    atomic_write_json(out / "summary.json", summary)
    Stage(out).finish(summary)
    shutil.rmtree(out / checkpoint.CKPT_DIR, ignore_errors=True)  # the model dir supersedes it
    return summary
