"""Trigger → target test cases written by an LLM from expert labels (``moelens causal cases``).

A finished ``moelens interpret`` run labels experts (``units/<unit>.json``: the explanation, the
windows it was drawn from, the promoted tokens). For each labelled expert an LLM is asked for
``n`` cases ``{text, trigger, target}``: a short text in which the expert's trigger occurs, and
the word the expert should make likely right after it. The answers are checked exactly as
``moelens causal trigger`` checks a cases file (:func:`.trigger.parse_cases`: the trigger must
occur in the text, else the case is rejected and counted; :func:`.trigger.target_token`: the
target is encoded with the tokenizer's leading-space convention and must give a token), and the
expert's layer and id are attached. An answer that is not the asked-for JSON, or a request that
failed, is a recorded failure, never an empty success. The trigger test then tests each expert on
its own cases (matched) and on the other experts' cases (control), as for a hand-written file.

The LLM is any client of :mod:`moelens.analysis.autointerp.clients` (an OpenAI-compatible
endpoint with its cache, retries and concurrency limit, or a local ``hf`` model): the same
clients label the experts, so a run that labels and tests shares one backend and one cache.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moelens.analysis.causal import trigger
from moelens.errors import DataError

EXPERT_SPACES = ("expert_out", "expert_gate", "expert_mean")
"""Unit spaces of whole experts in an interpret run (neuron-level units are not experts)."""


@dataclass(frozen=True)
class Label:
    """One labelled expert of an interpret run."""

    unit: str
    layer: int
    expert: int
    explanation: str
    examples: list[str]
    """activating windows, the strongest token of each marked as <<token>>"""
    promoted: list[str]


def _marked(window: dict) -> str | None:
    tokens, acts = window.get("tokens") or [], window.get("acts") or []
    if not tokens or len(acts) != len(tokens):
        return None
    top = int(np.argmax(acts))
    return "".join(tokens[:top]) + f"<<{tokens[top]}>>" + "".join(tokens[top + 1:])


def read_labels(labels_dir: Path, n_examples: int = 3, seed: int = 0) -> tuple[list[Label], dict[str, int]]:
    """The labelled experts of a ``moelens interpret`` output directory, and how many units were
    passed over and why. ``n_examples`` activating windows per expert are drawn (seeded) from
    the ones its explainer saw."""
    labels_dir = Path(labels_dir)
    units = labels_dir / "units"
    if not (labels_dir / "summary.json").is_file() or not units.is_dir():
        raise DataError(f"{labels_dir} is not a 'moelens interpret' output directory (no summary.json and "
                        "units/); give the --out directory of a finished interpret run")
    labels, skipped = [], {}
    for path in sorted(units.glob("*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            unit = rec["unit"]
            layer, expert, space = int(unit["layer"]), int(unit["expert"]), unit["space"]
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(f"{path} is not a unit file of 'moelens interpret'; rerun interpret") from None
        text = ((rec.get("explanation") or {}).get("text") or "").strip()
        why = ("not a whole expert" if space not in EXPERT_SPACES or expert < 0 or unit.get("index", -1) >= 0
               else rec.get("status", "unknown") if rec.get("status") != "ok"
               else "no explanation" if not text else None)
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        windows = [w for w in (rec.get("examples") or {}).get("explain") or [] if _marked(w)]
        rng = np.random.default_rng([seed, layer, expert])
        pick = sorted(rng.choice(len(windows), min(n_examples, len(windows)), replace=False)) if windows else []
        promoted = [str(t) for t in (rec.get("promoted") or [])][:10]
        labels.append(Label(unit["name"], layer, expert, text, [_marked(windows[i]) for i in pick], promoted))
    if not labels:
        raise DataError(f"no expert in {labels_dir} has a label ({sum(skipped.values())} units: "
                        f"{', '.join(f'{n} {k}' for k, n in sorted(skipped.items())) or 'none'}); "
                        "run 'moelens interpret --level expert' with an explainer first")
    return sorted(labels, key=lambda l: (l.layer, l.expert)), skipped


SYSTEM = ("You design tests for one expert of a mixture-of-experts language model. Answer with one "
          "JSON object and nothing else.")


def case_messages(label: Label, n: int) -> list[dict]:
    """The prompt asking for ``n`` test cases of one labelled expert."""
    lines = [f"An interpretability study describes expert {label.expert} of layer {label.layer} as: "
             f"\"{label.explanation}\"."]
    if label.examples:
        lines.append("Texts where it is most active (its strongest token marked <<like this>>):")
        lines += [f"- {' '.join(e.split())}" for e in label.examples]
    if label.promoted:
        lines.append(f"Tokens its output makes more likely: {', '.join(repr(t) for t in label.promoted)}.")
    lines += [
        f"Write {n} new short texts (one sentence each) to test whether this expert makes a predicted "
        "word more likely. In each text choose a trigger: a word or character sequence that occurs "
        "in the text verbatim and that the expert should respond to. Choose a target: the single "
        "word the expert should make likely as the next word right after the trigger.",
        f'Answer as {{"cases": [{{"text": "...", "trigger": "...", "target": "..."}}, ...]}} with {n} cases.']
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def parse_answer(text: str | None) -> list | None:
    """The list of cases in an answer (``{"cases": [...]}`` or a bare list, code fences allowed);
    None when the answer holds no such JSON (a failure)."""
    if not text:
        return None
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    candidates = [body]
    start, end = body.find("{"), body.rfind("}")
    if 0 <= start < end:
        candidates.append(body[start:end + 1])
    for chunk in candidates:
        try:
            obj = json.loads(chunk)
        except json.JSONDecodeError:
            continue
        items = obj.get("cases") if isinstance(obj, dict) else obj
        if isinstance(items, list):
            return items
    return None


def validate(label: Label, items: list, n: int, tokenizer: Any) -> trigger.Cases:
    """The first ``n`` answered cases of ``label``, checked as the trigger test checks a file."""
    records, rejected = [], []
    for i, item in enumerate(items[:n]):
        cid = f"{label.unit}.{i}"
        fields = [item.get(k) if isinstance(item, dict) else None for k in ("text", "trigger", "target")]
        if not all(isinstance(f, str) and f.strip() for f in fields):
            rejected.append({"id": cid, "reason": "not an object with non-empty text, trigger and target"})
            continue
        rec = {"id": cid, "text": fields[0], "trigger": fields[1], "target": fields[2].strip(),
               "layer": label.layer, "expert": label.expert}
        if isinstance(item.get("leading_space"), bool):
            rec["leading_space"] = item["leading_space"]
        records.append(rec)
    parsed = trigger.parse_cases(records, label.unit)
    kept = []
    for case in parsed.cases:
        try:
            trigger.target_token(tokenizer, case.target, case.leading_space)
        except DataError as err:
            rejected.append({"id": case.id, "reason": str(err)})
            continue
        kept.append(case)
    return trigger.Cases(kept, rejected + parsed.rejected)


def generate_cases(labels_dir: Path, client: Any, tokenizer: Any, n_per_expert: int = 5, seed: int = 0,
                   n_examples: int = 3, max_tokens: int | None = None) -> tuple[trigger.Cases, dict[str, Any]]:
    """Ask ``client`` (an autointerp client: ``await client.chat(messages)``) for ``n_per_expert``
    cases per labelled expert of ``labels_dir`` and validate them with ``tokenizer`` (the tested
    model's). Returns the valid cases (with the rejected ones and why) and a report: labelled
    experts, units passed over, failed answers (with the raw text), per-expert counts and the
    client's usage. The client is closed at the end (it reopens on its next use)."""
    if n_per_expert < 1:
        raise DataError(f"ask for at least one case per expert, got {n_per_expert}")
    labels, skipped = read_labels(labels_dir, n_examples, seed)

    async def ask_all():
        try:
            return await asyncio.gather(*(client.chat(case_messages(l, n_per_expert), max_tokens=max_tokens)
                                          for l in labels))
        finally:
            await client.close()

    answers = asyncio.run(ask_all())
    out, failures, per_expert = trigger.Cases([]), [], []
    for label, done in zip(labels, answers):
        items = parse_answer(done.text) if done.ok else None
        row = {"unit": label.unit, "layer": label.layer, "expert": label.expert, "cases": 0, "rejected": 0,
               "failure": None}
        if items is None:
            row["failure"] = done.failure or "the answer holds no JSON list of cases"
            failures.append({"unit": label.unit, "reason": row["failure"], "raw": done.text})
        else:
            got = validate(label, items, n_per_expert, tokenizer)
            out.cases += got.cases
            out.rejected += got.rejected
            row.update(cases=len(got.cases), rejected=len(got.rejected))
        per_expert.append(row)
    usage = getattr(client, "usage", None)
    report = {"labels": str(labels_dir), "experts": len(labels), "skipped_units": skipped,
              "requested": n_per_expert * len(labels), "cases": len(out.cases), "rejected": len(out.rejected),
              "failures": len(failures), "failed_answers": failures, "rejected_cases": out.rejected,
              "per_expert": per_expert, "usage": usage.to_json() if usage is not None else None}
    return out, report


def case_records(cases: list[trigger.Case]) -> list[dict[str, Any]]:
    """Cases as the records of a cases file (what ``moelens causal trigger --cases`` reads)."""
    return [asdict(c) for c in cases]
