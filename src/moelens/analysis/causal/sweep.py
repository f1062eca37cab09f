"""Single-expert ablation sweeps: a list of (layer, expert) cells in, tidy rows out.

The batched sweep runs each corpus batch once unmodified, keeping at every swept layer the
residual stream, the FFN block output, the routing and each routed expert's output. Ablating
expert e of layer l changes that layer's block output by an amount known from those records
(``zero``: −w·out_e; ``remove``: the rest rescaled to the token's total; ``mean``: w·(mean −
out_e)), so the new residual stream after layer l is written down directly and only layers
l+1.. run again (:meth:`run_from`), and only on the windows where e was routed: elsewhere the
effect is exactly zero. Copies of windows for a *group* of experts of one layer are stacked
into one forward. :func:`sweep_reference` is the plain method, one full forward per ablation
under :func:`~moelens.analysis.causal.interventions.intervene`; tests hold the two equal.

Rows are per domain and, when the windows carry concept labels, per concept too. A concept row
averages the Δ loss of the positions whose *next* token carries the concept: the loss at t is
that of predicting token t+1, so this is the change in the loss on the concept's tokens (how
much worse the model predicts them), the quantity a language-model loss per concept means.
Its ``tokens_routed`` counts those positions where the expert was routed (at t, the position
that predicts the concept token; the token itself cannot affect its own prediction).

Every cell's numbers depend only on its group (fixed by :func:`groups` from the layer and the
expert index), never on the other cells asked for, so a list of cells can be split across
processes group by group and the rows concatenated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from moelens.analysis.causal.corpus import Batch, Windows
from moelens.analysis.causal.interventions import Intervention, intervene
from moelens.capture.placed import input_device
from moelens.errors import ConfigError

ABLATIONS = ("zero", "remove", "mean")
"""Ablations a sweep can run (see the module docstring)."""


@dataclass(frozen=True, order=True)
class Cell:
    """One (layer, expert) to ablate."""

    layer: int
    expert: int


def check_cells(adapter: Any, cells: Sequence[Cell]) -> None:
    moe = adapter.moe_layers()
    for c in cells:
        if c.layer not in moe:
            raise ConfigError(f"layer {c.layer} is not a MoE layer of this model (MoE layers: {moe})")
        if not 0 <= c.expert < adapter.num_experts(c.layer):
            raise ConfigError(f"unknown expert id {c.expert} at layer {c.layer}: it has experts "
                              f"0..{adapter.num_experts(c.layer) - 1}")


def groups(cells: Sequence[Cell], size: int) -> list[list[Cell]]:
    """Cells grouped by layer and by block of ``size`` expert ids (``e // size``), in order."""
    out: dict[tuple[int, int], list[Cell]] = {}
    for c in sorted(set(cells)):
        out.setdefault((c.layer, c.expert // size), []).append(c)
    return list(out.values())


class Tally:
    """Sums of one cell's effects per domain and, with concepts, per (domain, concept)."""

    def __init__(self, n_domains: int, n_concepts: int = 0):
        z = lambda *shape: torch.zeros(n_domains, *shape, dtype=torch.float64)  # noqa: E731
        self.d_loss, self.kl, self.d_loss_routed = z(), z(), z()
        self.routed, self.routed_scored = z(), z()
        self.c_d_loss, self.c_kl, self.c_d_loss_routed = z(n_concepts), z(n_concepts), z(n_concepts)
        self.c_routed = z(n_concepts)

    def add_routing(self, routed: torch.Tensor, scored_routed: torch.Tensor, domain: torch.Tensor,
                    concepts: torch.Tensor | None = None) -> None:
        """``routed``/``scored_routed`` [B, T] masks of one batch's windows, ``domain`` [B],
        ``concepts`` [B, T-1, C] the positions scored for each concept (:func:`concept_scored`)."""
        self.routed.index_add_(0, domain, routed.sum(-1).double().cpu())
        self.routed_scored.index_add_(0, domain, scored_routed.sum(-1).double().cpu())
        if concepts is not None:
            on = scored_routed[:, :-1, None].cpu() & concepts
            self.c_routed.index_add_(0, domain, on.sum(1).double())

    def add_effects(self, d_ce: torch.Tensor, kl: torch.Tensor, scored_routed: torch.Tensor, domain: torch.Tensor,
                    concepts: torch.Tensor | None = None) -> None:
        """Per-position Δ cross-entropy and KL [G, T-1] of G windows (zero where not scored);
        ``concepts`` [G, T-1, C] as in :meth:`add_routing`."""
        d_ce, kl, scored_routed = d_ce.cpu(), kl.cpu(), scored_routed.cpu()
        self.d_loss.index_add_(0, domain, d_ce.sum(-1).double())
        self.kl.index_add_(0, domain, kl.sum(-1).double())
        self.d_loss_routed.index_add_(0, domain, (d_ce * scored_routed[:, :-1]).sum(-1).double())
        if concepts is not None:
            on = concepts.double()
            d64 = d_ce.double()[..., None]
            self.c_d_loss.index_add_(0, domain, (d64 * on).sum(1))
            self.c_kl.index_add_(0, domain, (kl.double()[..., None] * on).sum(1))
            self.c_d_loss_routed.index_add_(0, domain, (d64 * scored_routed[:, :-1, None].double() * on).sum(1))


def concept_scored(batch: Batch) -> torch.Tensor | None:
    """[B, T-1, C] bool: position t is scored for concept c when token t+1 carries c (and is
    real). The loss at t is that of predicting token t+1, so a concept row's Δ loss is the
    change in the loss *on the concept's tokens*: how much worse the model predicts them."""
    if batch.concepts is None:
        return None
    return batch.concepts[:, 1:] & batch.mask[:, 1:, None].bool()


def rows_of(cells: Sequence[Cell], tallies: dict[Cell, Tally], scored: torch.Tensor, domains: list[str],
            ablation: str, concepts: Sequence[str] = (), c_scored: torch.Tensor | None = None
            ) -> list[dict[str, Any]]:
    """Tidy rows: one per (cell, domain) plus the domain ``all``, with concept ``all`` (every
    scored token); then, for each of ``concepts``, the same domains again with the concept's
    name, averaged over the positions whose next token carries it (``c_scored`` [D, C] counts
    them). An expert never routed on the tokens of a row is ``untested`` (its effects NaN), never
    "no effect"; for a concept row that means never routed at a position scored for it."""
    out = []
    names = ["all"] + (list(domains) if len(domains) > 1 else [])
    for c in cells:
        t = tallies[c]
        for i, name in enumerate(names):
            pick = slice(None) if name == "all" else slice(i - 1, i)
            tokens, routed = float(scored[pick].sum()), float(t.routed[pick].sum())
            out.append(_row(c, name, "all", ablation, tokens, routed, float(t.routed_scored[pick].sum()),
                            t.d_loss[pick].sum(), t.kl[pick].sum(), t.d_loss_routed[pick].sum()))
        for k, concept in enumerate(concepts):
            for i, name in enumerate(names):
                pick = slice(None) if name == "all" else slice(i - 1, i)
                routed = float(t.c_routed[pick, k].sum())
                out.append(_row(c, name, concept, ablation, float(c_scored[pick, k].sum()), routed, routed,
                                t.c_d_loss[pick, k].sum(), t.c_kl[pick, k].sum(), t.c_d_loss_routed[pick, k].sum()))
    return out


def _row(c: Cell, domain: str, concept: str, ablation: str, tokens: float, routed: float, routed_scored: float,
         d_loss: torch.Tensor, kl: torch.Tensor, d_loss_routed: torch.Tensor) -> dict[str, Any]:
    nan = float("nan")
    tested = routed > 0
    return {
        "layer": c.layer, "expert": c.expert, "domain": domain, "concept": concept, "ablation": ablation,
        "status": "tested" if tested else "untested",
        "tokens": int(tokens), "tokens_routed": int(routed),
        "delta_loss": float(d_loss) / tokens if tested and tokens else nan,
        "kl": float(kl) / tokens if tested and tokens else nan,
        "delta_loss_routed": float(d_loss_routed) / routed_scored if tested and routed_scored else nan,
    }


def score(base_logp: torch.Tensor, base_p: torch.Tensor, new_logits: torch.Tensor, ids: torch.Tensor,
          valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Δ cross-entropy and KL(base ‖ new) per position [G, T-1], zero where not ``valid``
    (``base_p`` = ``base_logp.exp()``, computed once per batch), on the CPU; the vocabulary-wide
    work runs where the logits are."""
    where = new_logits.device
    new = torch.log_softmax(new_logits[:, :-1].float(), dim=-1)
    base_logp, base_p = base_logp.to(where), base_p.to(where)
    ids, valid = ids.to(where), valid.to(where)
    nxt = ids[:, 1:, None]
    d_ce = base_logp.gather(-1, nxt).squeeze(-1) - new.gather(-1, nxt).squeeze(-1)
    kl = (base_p * (base_logp - new)).sum(-1).clamp_min(0)
    return (d_ce * valid).cpu(), (kl * valid).cpu()


class Records:
    """Sink keeping the routing, routed expert rows and residual stream of one forward (of the
    layers in ``keep``, default all): what the sweeps and the trigger test read of a run."""

    def __init__(self, keep: Iterable[int] | None = None) -> None:
        self.keep = None if keep is None else set(keep)
        self.route: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.rows: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.res: dict[int, torch.Tensor] = {}

    def routing(self, layer: int, ids: torch.Tensor, weights: torch.Tensor) -> None:
        self.route[layer] = (ids, weights)

    def expert_rows(self, layer: int, token_idx: torch.Tensor, expert_idx: torch.Tensor,
                    hidden: torch.Tensor, out: torch.Tensor) -> None:
        if self.keep is None or layer in self.keep:
            self.rows[layer] = (token_idx, expert_idx, out)

    def shared(self, *args: Any) -> None:
        pass

    def ffn(self, *args: Any) -> None:
        pass

    def resid(self, layer: int, hidden: torch.Tensor) -> None:
        if self.keep is None or layer in self.keep:
            self.res[layer] = hidden


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _scored_routed(routed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: routed real tokens that have a real next token (their loss is scored)."""
    mask = mask.to(routed.device)
    nxt = torch.cat([mask[:, 1:].bool(), torch.zeros(mask.shape[0], 1, dtype=torch.bool, device=mask.device)], 1)
    return routed & mask.bool() & nxt


def block_delta(ablation: str, expert: int, ids: torch.Tensor, weights: torch.Tensor,
                rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor], mean: torch.Tensor | None,
                real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Δ block output [N, H], routed [N] bool) of ablating ``expert`` on the real tokens."""
    token_idx, expert_idx, out = rows
    n, h = ids.shape[0], out.shape[-1]
    slots = (ids == expert) & real.to(ids.device)[:, None]
    w_e = (weights.float() * slots).sum(-1)
    pick = expert_idx == expert
    tok = token_idx[pick]
    own = out.new_zeros(n, h, dtype=torch.float32)
    own[tok] = out[pick].float()
    delta = -w_e[:, None] * own
    if ablation == "mean":
        delta = delta + w_e[:, None] * mean.to(out.device).float()[None, :]
    elif ablation == "remove":
        total = weights.float().sum(-1)
        rest = total - w_e
        factor = torch.where(slots.any(-1) & (rest > 0), total / torch.where(rest > 0, rest, 1.0), 1.0)
        w_rows = (weights.float().reshape(-1)[_slot_of(ids, token_idx, expert_idx)])
        routed_sum = out.new_zeros(n, h, dtype=torch.float32).index_add_(0, token_idx, out.float() * w_rows[:, None])
        delta = delta + (factor - 1)[:, None] * (routed_sum + delta)
    return delta, slots.any(-1)


def _slot_of(ids: torch.Tensor, token_idx: torch.Tensor, expert_idx: torch.Tensor) -> torch.Tensor:
    """Flat index into ``ids`` [N, k] of each (token, expert) row."""
    k = ids.shape[1]
    hit = ids[token_idx] == expert_idx[:, None]
    return token_idx * k + hit.float().argmax(-1)


@torch.no_grad()
def sweep(model: torch.nn.Module, adapter: Any, windows: Windows, cells: Sequence[Cell],
          ablation: str = "zero", group_size: int = 8, means: dict[int, torch.Tensor] | None = None,
          tail_tokens: int = 4096, tick: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """The batched sweep (module docstring) over ``cells``; rows as :func:`rows_of`."""
    check_cells(adapter, cells)
    if ablation not in ABLATIONS:
        raise ConfigError(f"unknown ablation {ablation!r}; choose from {', '.join(ABLATIONS)}")
    n_dom, n_con = len(windows.domains), len(windows.concepts)
    tallies = {c: Tally(n_dom, n_con) for c in cells}
    scored = torch.zeros(n_dom, dtype=torch.float64)
    c_scored = torch.zeros(n_dom, n_con, dtype=torch.float64)
    layers = sorted({c.layer for c in cells})
    dev = input_device(model)
    for batch in windows.batches:
        base = _baseline(model, adapter, batch, layers, dev)
        valid = batch.mask[:, 1:].float()
        scored.index_add_(0, batch.domain, valid.sum(-1).double())
        on = _concepts_of(batch, n_con)
        if on is not None:
            c_scored.index_add_(0, batch.domain, on.sum(1).double())
        for group in groups(cells, group_size):
            _run_group(model, adapter, batch, base, group, ablation, means, tallies, tail_tokens, dev, on)
            if tick is not None:
                tick()
    return rows_of(list(cells), tallies, scored, windows.domains, ablation, windows.concepts, c_scored)


def _concepts_of(batch: Batch, n_concepts: int) -> torch.Tensor | None:
    """:func:`concept_scored` of ``batch``, checked against the windows' concept list."""
    if not n_concepts:
        return None
    on = concept_scored(batch)
    if on is None or on.shape[-1] != n_concepts:
        raise ValueError(f"a batch carries {0 if on is None else on.shape[-1]} concept labels, "
                         f"the windows name {n_concepts}")
    return on


def _baseline(model: torch.nn.Module, adapter: Any, batch: Batch, layers: list[int],
              dev: torch.device) -> dict[str, Any]:
    """The unmodified run, keeping what ``layers`` need (each on the device its layer ran on).
    Every MoE layer is hooked the same way whichever layers are swept, so the baseline is
    bitwise the same for every list of cells."""
    rec = Records(keep=layers)
    blocks: dict[int, torch.Tensor] = {}
    hooks = [adapter.ffn_block(l).register_forward_hook(
        lambda m, a, out, l=l: blocks.__setitem__(l, _first(out).detach())) for l in layers]
    try:
        with adapter.attach(rec, adapter.moe_layers(), spaces=["expert", "resid"]):
            logits = model(input_ids=batch.ids.to(dev), attention_mask=batch.mask.to(dev), use_cache=False).logits
    finally:
        for h in hooks:
            h.remove()
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return {"rec": rec, "blocks": blocks, "logp": logp, "p": logp.exp()}


def _run_group(model: torch.nn.Module, adapter: Any, batch: Batch, base: dict[str, Any], group: list[Cell],
               ablation: str, means: dict[int, torch.Tensor] | None, tallies: dict[Cell, Tally],
               tail_tokens: int, dev: torch.device, on: torch.Tensor | None = None) -> None:
    """The group's new residual streams, worked out on the device ``layer`` ran on; the rest of
    the model runs from them on the windows where the expert was routed."""
    layer = group[0].layer
    rec = base["rec"]
    b, t = batch.ids.shape
    real = batch.mask.reshape(-1).bool()
    ids, weights = rec.route[layer]
    here = ids.device
    block = base["blocks"][layer].reshape(b * t, -1).to(here)
    resid = rec.res[layer].to(here)
    update = adapter.residual_update(layer, block).to(here)
    copies: list[tuple[Cell, int, torch.Tensor]] = []  # (cell, window, new residual [T, H])
    for cell in group:
        mean = None if means is None else means[layer][cell.expert]
        delta, routed = block_delta(ablation, cell.expert, ids, weights, rec.rows[layer], mean, real)
        routed = routed.view(b, t).cpu()
        tallies[cell].add_routing(routed, _scored_routed(routed, batch.mask), batch.domain, on)
        if not routed.any():
            continue
        new_resid = resid - update + adapter.residual_update(layer, block + delta.to(here, block.dtype)).to(here)
        new_resid = new_resid.view(b, t, -1)
        for w in torch.nonzero(routed.any(-1)).flatten().tolist():
            copies.append((cell, w, new_resid[w]))
    per_forward = max(1, tail_tokens // max(t, 1))
    routed_ids = ids.view(b, t, -1).cpu() if copies else None
    for s in range(0, len(copies), per_forward):
        chunk = copies[s:s + per_forward]
        win = torch.tensor([w for _, w, _ in chunk])
        hidden = torch.stack([h for _, _, h in chunk]).to(resid.dtype)
        ids_c, mask_c = batch.ids[win], batch.mask[win]
        with adapter.run_from(layer, hidden):
            logits = model(input_ids=ids_c.to(dev), attention_mask=mask_c.to(dev), use_cache=False).logits
        pick = win.to(base["logp"].device)
        d_ce, kl = score(base["logp"][pick], base["p"][pick], logits, ids_c, mask_c[:, 1:].float())
        for g, (cell, w, _) in enumerate(chunk):
            routed = (routed_ids[w:w + 1] == cell.expert).any(-1)
            scored_routed = _scored_routed(routed, batch.mask[w:w + 1]).float()
            tallies[cell].add_effects(d_ce[g:g + 1], kl[g:g + 1], scored_routed, batch.domain[w:w + 1],
                                      None if on is None else on[w:w + 1])


@torch.no_grad()
def sweep_reference(model: torch.nn.Module, adapter: Any, windows: Windows, cells: Sequence[Cell],
                    ablation: str = "zero", means: dict[int, torch.Tensor] | None = None,
                    tick: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """The plain method: per batch one unmodified forward (logits and routing), then one full
    forward per cell under :func:`intervene`."""
    check_cells(adapter, cells)
    n_dom, n_con = len(windows.domains), len(windows.concepts)
    tallies = {c: Tally(n_dom, n_con) for c in cells}
    scored = torch.zeros(n_dom, dtype=torch.float64)
    c_scored = torch.zeros(n_dom, n_con, dtype=torch.float64)
    layers = sorted({c.layer for c in cells})
    dev = input_device(model)
    for batch in windows.batches:
        on = _concepts_of(batch, n_con)
        if on is not None:
            c_scored.index_add_(0, batch.domain, on.sum(1).double())
        rec = Records()
        ids, mask = batch.ids.to(dev), batch.mask.to(dev)
        with adapter.attach(rec, layers, spaces=["expert"]):
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        base_logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        base_p = base_logp.exp()
        valid = batch.mask[:, 1:].float()
        scored.index_add_(0, batch.domain, valid.sum(-1).double())
        for cell in cells:
            mean = None if means is None else means[cell.layer][cell.expert]
            iv = Intervention(cell.layer, cell.expert, ablation, mean=mean)
            with intervene(model, [iv], adapter=adapter, valid=batch.mask.bool()):
                new = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            d_ce, kl = score(base_logp, base_p, new, batch.ids, valid)
            routed = (rec.route[cell.layer][0] == cell.expert).any(-1).cpu().view(batch.ids.shape) & batch.mask.bool()
            scored_routed = _scored_routed(routed, batch.mask)
            tallies[cell].add_routing(routed, scored_routed, batch.domain, on)
            tallies[cell].add_effects(d_ce, kl, scored_routed.float(), batch.domain, on)
            if tick is not None:
                tick()
    return rows_of(list(cells), tallies, scored, windows.domains, ablation, windows.concepts, c_scored)
