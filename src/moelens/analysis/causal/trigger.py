"""The trigger → target test: does a labelled expert promote its target token where its trigger
occurs?

A test case ``{"text", "trigger", "target", "layer", "expert"}`` says: in ``text``, the trigger
should route to expert (layer, expert), whose function should raise the logit of ``target`` as
the next token. For each case and each tested expert, at the trigger position where that expert's
router weight is highest (every occurrence of the trigger is searched, every token it overlaps
counts), the direct logit attribution of each routed expert's weighted output on the target is
taken through the final norm with the *final* residual stream's scale at that position; the
tested expert's rank among the routed experts is 1, 2–3, lower ("rest"), or it was not routed
there ("not routed"). An expert is tested on its own cases (matched) and on every other expert's
cases (control).

Defects of the published script this avoids: the norm scale from the wrong layer, a target
encoded without its leading space, a first-occurrence trigger search with no check that the
trigger is there at all (here a case whose trigger is missing is rejected and counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from moelens.analysis.causal.sweep import Records
from moelens.errors import ConfigError, DataError

CATEGORIES = ("rank 1", "rank 2-3", "rest", "not routed")
"""The rank table's columns."""


@dataclass(frozen=True)
class Case:
    """One trigger → target test case."""

    id: str
    text: str
    trigger: str
    target: str
    layer: int
    expert: int
    leading_space: bool = True
    """the target follows a space (encode it as the tokenizer writes a word after a space)"""


@dataclass
class Cases:
    """Valid cases, and the rejected ones with why."""

    cases: list[Case]
    rejected: list[dict[str, str]] = field(default_factory=list)


def parse_cases(records: Any, source: str = "cases") -> Cases:
    """Validate case records (a list, or ``{"cases": [...]}``); a trigger missing from its text
    rejects the case (counted), a malformed record is an error for the whole file."""
    if isinstance(records, dict):
        records = records.get("cases")
    if not isinstance(records, list):
        raise DataError(f"{source} must hold a JSON list of cases (or {{\"cases\": [...]}})")
    out = Cases([])
    for i, rec in enumerate(records):
        where = f"{source} case {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where} is not an object with text, trigger, target, layer, expert")
        missing = [k for k in ("text", "trigger", "target", "layer", "expert") if k not in rec]
        if missing:
            raise DataError(f"{where} lacks {', '.join(missing)}; every case needs text, trigger, "
                            "target, layer and expert")
        try:
            layer, expert = int(rec["layer"]), int(rec["expert"])
        except (TypeError, ValueError):
            raise DataError(f"{where}: layer and expert must be integers") from None
        text, trigger, target = str(rec["text"]), str(rec["trigger"]), str(rec["target"])
        cid = str(rec.get("id", i))
        if not trigger or not target.strip():
            raise DataError(f"{where}: trigger and target must not be empty")
        if trigger not in text:
            out.rejected.append({"id": cid, "reason": f"trigger {trigger!r} does not occur in the text"})
            continue
        out.cases.append(Case(cid, text, trigger, target, layer, expert, bool(rec.get("leading_space", True))))
    return out


def load_cases(path: Path) -> Cases:
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"cases file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"cases file {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_cases(records, str(path))


def check_experts(cases: list[Case], adapter: Any) -> None:
    """Every case names a MoE layer and an expert the model has (ConfigError otherwise)."""
    moe = adapter.moe_layers()
    for c in cases:
        if c.layer not in moe:
            raise ConfigError(f"case {c.id} names layer {c.layer}, which is not a MoE layer (MoE layers: {moe})")
        n = adapter.num_experts(c.layer)
        if not 0 <= c.expert < n:
            raise ConfigError(f"case {c.id} names unknown expert id {c.expert}; layer {c.layer} has experts 0..{n - 1}")


def target_token(tokenizer: Any, target: str, leading_space: bool) -> tuple[int, int]:
    """(token id, tokens the target takes): its first token as written after a space when
    ``leading_space`` and the tokenizer folds the space into the word (BPE ``Ġword``,
    SentencePiece ``▁word``); otherwise as written."""
    word = target.lstrip() if leading_space else target
    plain = tokenizer(word, add_special_tokens=False)["input_ids"]
    if leading_space:
        spaced = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if spaced and tokenizer.decode([spaced[0]]).strip():  # the space is part of the first token
            return int(spaced[0]), len(spaced)
    if not plain:
        raise DataError(f"target {target!r} encodes to no token")
    return int(plain[0]), len(plain)


def trigger_positions(text: str, trigger: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Token positions overlapping any occurrence of ``trigger`` in ``text``."""
    spans, start = [], text.find(trigger)
    while start >= 0:
        spans.append((start, start + len(trigger)))
        start = text.find(trigger, start + 1)
    return [i for i, (a, b) in enumerate(offsets) if b > a and any(a < e and b > s for s, e in spans)]


@torch.no_grad()
def attributions(model: torch.nn.Module, adapter: Any, ids: torch.Tensor, layers: list[int]) -> dict[str, Any]:
    """One forward of ``ids`` [T]: routing, expert outputs and FFN block outputs at ``layers``
    and the final residual stream (before the final norm)."""
    sink, blocks = Records(), {}
    last = adapter.num_layers - 1

    def keep(layer: int):
        def hook(module: torch.nn.Module, args: Any, out: Any) -> None:
            o = out[0] if isinstance(out, tuple) else out
            blocks[layer] = o.reshape(-1, o.shape[-1])
        return hook

    hooks = [adapter.ffn_block(l).register_forward_hook(keep(l)) for l in layers]
    try:
        with adapter.attach(sink, sorted(set(layers) | {last}), spaces=["expert", "resid"]):
            model(input_ids=ids[None], use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return {"sink": sink, "blocks": blocks, "final": sink.res[last]}


@torch.no_grad()
def expert_dla(adapter: Any, run: dict[str, Any], layer: int, position: int, target: int) -> dict[int, float]:
    """Direct logit attribution on ``target`` of each expert routed at ``position`` of ``layer``."""
    ids, weights = run["sink"].route[layer]
    token_idx, expert_idx, out = run["sink"].rows[layer]
    w_u = adapter.unembedding()[target].float() * adapter.logit_scale()
    resid = run["final"][position]
    block = run["blocks"][layer][position]
    dla = {}
    for slot in range(ids.shape[1]):
        e = int(ids[position, slot])
        row = torch.nonzero((token_idx == position) & (expert_idx == e)).flatten()[0]
        part = weights[position, slot].float() * out[row].float()
        part = adapter.residual_update_linear(layer, block, part)
        dla[e] = dla.get(e, 0.0) + float(adapter.final_norm_linear(resid, part) @ w_u)
    return dla


def category(rank: int | None) -> str:
    return "not routed" if rank is None else "rank 1" if rank == 1 else "rank 2-3" if rank <= 3 else "rest"


def evaluate(model: torch.nn.Module, adapter: Any, tokenizer: Any, cases: list[Case]) -> list[dict[str, Any]]:
    """One row per (case, tested expert): each labelled expert on its own and the other cases."""
    check_experts(cases, adapter)
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("the trigger test needs a fast tokenizer (character offsets) to find triggers; "
                        "save the model with its tokenizer.json")
    experts = sorted({(c.layer, c.expert) for c in cases})
    layers = sorted({l for l, _ in experts})
    rows = []
    for case in cases:
        enc = tokenizer(case.text, return_offsets_mapping=True)
        ids = torch.tensor(enc["input_ids"], dtype=torch.long)
        positions = trigger_positions(case.text, case.trigger, [tuple(o) for o in enc["offset_mapping"]])
        target, n_target = target_token(tokenizer, case.target, case.leading_space)
        run = attributions(model, adapter, ids, layers)
        for layer, expert in experts:
            r_ids, r_w = run["sink"].route[layer]
            weight = {p: float((r_w[p].float() * (r_ids[p] == expert)).sum()) for p in positions}
            routed = [p for p in positions if (r_ids[p] == expert).any()]
            row = {"case": case.id, "case_layer": case.layer, "case_expert": case.expert, "layer": layer,
                   "expert": expert, "kind": "matched" if (layer, expert) == (case.layer, case.expert) else "control",
                   "target_id": target, "target_tokens": n_target, "trigger_positions": len(positions),
                   "position": None, "weight": None, "dla": None, "rank": None}
            if routed:
                pos = max(routed, key=lambda p: (weight[p], -p))
                dla = expert_dla(adapter, run, layer, pos, target)
                order = sorted(dla, key=lambda e: -dla[e])
                row.update(position=pos, weight=weight[pos], dla=dla[expert], rank=order.index(expert) + 1)
            row["category"] = category(row["rank"])
            rows.append(row)
    return rows


def rank_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shares of each category for matched and control rows, and "top given routed"."""
    out = []
    for kind in ("matched", "control"):
        sel = [r for r in rows if r["kind"] == kind]
        n = len(sel)
        counts = {c: sum(r["category"] == c for r in sel) for c in CATEGORIES}
        routed = n - counts["not routed"]
        out.append({"kind": kind, "n": n, **{c: counts[c] / n if n else float("nan") for c in CATEGORIES},
                    "routed": routed / n if n else float("nan"),
                    "top_given_routed": counts["rank 1"] / routed if routed else float("nan")})
    return out
