"""The trigger → target test: a planted expert ranks first on its prompts and not on the others';
the attribution uses the final residual's norm scale; triggers and targets are found as they
should be; bad case files are rejected through the command as a user types it."""

from __future__ import annotations

import json

import torch
from clitools import assert_user_error, run_cli

from moelens.analysis.causal.trigger import (Case, evaluate, parse_cases, rank_table, target_token,
                                             trigger_positions)
from moelens.capture.adapters import get_adapter

from .planted import char_tokenizer, tid, trigger_model

WIRED = [{"text": t, "trigger": "q", "target": "z", "layer": 0, "expert": 3}
         for t in ("the quick fox", "quiet quarters", "a quilt and a quail")]
OTHER = [{"text": t, "trigger": "b", "target": "c", "layer": 0, "expert": 0}
         for t in ("a big bad bat", "the old boat", "bring the bell")]


def test_planted_expert_ranks_first_on_matched_prompts_only():
    model, tok = trigger_model("q", "z"), char_tokenizer()
    adapter = get_adapter(model)
    rows = evaluate(model, adapter, tok, parse_cases(WIRED + OTHER).cases)
    wired = [r for r in rows if r["expert"] == 3]
    assert [r["category"] for r in wired if r["kind"] == "matched"] == ["rank 1"] * 3
    assert [r["category"] for r in wired if r["kind"] == "control"] == ["not routed"] * 3
    table = {t["kind"]: t for t in rank_table(wired)}
    assert table["matched"]["rank 1"] == 1.0 and table["control"]["rank 1"] == 0.0
    # the attribution divides by the norm scale of the *final* residual at that position
    first = next(r for r in wired if r["kind"] == "matched" and r["case"] == "0")
    ids = torch.tensor(tok(WIRED[0]["text"])["input_ids"])
    with torch.no_grad():
        x = model.transformer.wte(ids[None]) + model.transformer.wpe(torch.arange(len(ids)))[None]
        block = model.transformer.h[0]
        x = x + block.attn(block.ln_1(x), None)
        mlp_out = block.mlp(block.ln_2(x))
        final = (x + mlp_out)[0, first["position"]]
    ln = model.transformer.ln_f
    part = mlp_out[0, first["position"]]  # the only routed expert with a target-sized output
    by_hand = float(((part - part.mean()) / torch.sqrt(final.var(unbiased=False) + ln.eps))[tid("z")])
    assert abs(first["dla"] - by_hand) < 0.02 * abs(by_hand) and by_hand > 3


def test_every_occurrence_counts_and_targets_keep_their_space():
    offsets = [(i, i + 1) for i in range(9)]
    assert trigger_positions("a qq b q", "q", offsets[:8]) == [2, 3, 7]
    assert trigger_positions("xabyab", "ab", offsets[:6]) == [1, 2, 4, 5]
    assert trigger_positions("abc", "ab", [(0, 0), (0, 2), (2, 3)]) == [1]  # BOS spans nothing
    char = char_tokenizer()
    assert target_token(char, "z", True) == (tid("z"), 1)  # the space is its own token here
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from e2e.e2e_helpers import bpe_tokenizer

    bpe = bpe_tokenizer(["the river and the river and the garden"] * 20, vocab_size=300)
    got, n = target_token(bpe, "river", True)
    assert bpe.decode([got]) == " river" and n == 1
    plain, _ = target_token(bpe, "river", False)
    assert bpe.decode([plain]).startswith("r")


def test_case_files_through_the_command(planted_dirs, tmp_path):
    good = tmp_path / "cases.json"
    cases = WIRED + OTHER + [{"text": "no trigger here", "trigger": "q!", "target": "z", "layer": 0, "expert": 3}]
    good.write_text(json.dumps(cases))
    out = tmp_path / "run"
    proc = run_cli("causal", "trigger", "--model", planted_dirs["trigger"], "--cases", good, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "6 cases tested, 1 rejected" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected"] == 1 and "does not occur" in summary["rejected_cases"][0]["reason"]
    assert (out / "trigger.csv").exists() and (out / "figures" / "trigger_ranks.png").exists()

    none = tmp_path / "none.json"
    none.write_text(json.dumps([{"text": "abc", "trigger": "zz", "target": "c", "layer": 0, "expert": 0}]))
    assert_user_error(run_cli("causal", "trigger", "--model", planted_dirs["trigger"], "--cases", none,
                              "--out", tmp_path / "x"), "none of the 1 cases", "does not occur")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps([dict(WIRED[0], expert=9)]))
    assert_user_error(run_cli("causal", "trigger", "--model", planted_dirs["trigger"], "--cases", unknown,
                              "--out", tmp_path / "y"), "unknown expert id 9", "0..3")
    assert not (tmp_path / "y").exists()
