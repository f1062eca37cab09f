"""Concept rows of the ablation sweep: the Δ loss on the tokens that carry a concept.

Planted: the trigger model's expert 3 fires only on 'q' and writes the 'z' direction, so
ablating it changes only the prediction of the token after a 'q'; a concept labelling that
token carries the whole effect, and one labelling every other token is untested. Recomputed by
hand: on the domain model (character tokenizer, so token i is character i), a concept row
equals the per-position Δ cross-entropy of the intervention, masked by the concept label of
the *next* character, windows cut as the corpus cuts them. Bad input goes through the CLI.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from clitools import assert_user_error, run_cli

from moelens import cli
from moelens.analysis.causal.common import concepts_of
from moelens.analysis.causal.corpus import make_windows
from moelens.analysis.causal.effects import measure
from moelens.analysis.causal.interventions import Intervention
from moelens.analysis.causal.sweep import Cell, sweep, sweep_reference
from moelens.capture.adapters import get_adapter
from moelens.data.domains import LabelledDocument
from moelens.errors import DataError

from .planted import A, B, char_tokenizer, domain_model, trigger_model, walk

TEXTS = ["abqz qzcd eqa qz fgq hqz", "qqz zqbq lq  qzqm", "no trigger in here at all"]


def by_concept(rows, domain="all"):
    return {r["concept"]: r for r in rows if r["domain"] == domain}


@pytest.fixture(scope="module")
def trigger_rows():
    model = trigger_model("q", "z")
    adapter = get_adapter(model)
    concepts = concepts_of(["after_q=regex:(?<=q)[a-z ]", "qz=regex:(?<=q)z", "q_other=regex:(?<=q)[^z]",
                            "not_after_q=regex:(?<!q)[a-z ]"])
    docs = [LabelledDocument(t, "x") for t in TEXTS]
    windows = make_windows(docs, char_tokenizer(), ctx=7, batch_size=2, concepts=concepts)
    cells = [Cell(0, e) for e in range(4)]
    return (sweep(model, adapter, windows, cells, group_size=2, tail_tokens=9),
            sweep_reference(model, adapter, windows, cells))


def test_planted_expert_moves_only_the_loss_of_the_token_after_its_trigger(trigger_rows):
    fast, ref = trigger_rows
    rows = by_concept([r for r in fast if r["expert"] == 3])
    every, after = rows["all"], rows["after_q"]
    # scored positions whose next token follows a 'q' in the same window (ctx 7 cuts some pairs)
    pairs = sum(1 for t in TEXTS for a in range(0, len(t), 7) for i in range(1, len(t[a:a + 7]))
                if t[a:a + 7][i - 1] == "q")
    assert after["tokens"] == pairs and after["tokens_routed"] == pairs and after["status"] == "tested"
    # every effect of the expert is on those tokens: the sums agree
    assert every["delta_loss"] * every["tokens"] == pytest.approx(after["delta_loss"] * after["tokens"], rel=1e-6)
    assert after["delta_loss_routed"] == pytest.approx(after["delta_loss"], rel=1e-9)
    assert rows["qz"]["delta_loss"] > 0.1  # losing the 'z' push makes the 'z' after 'q' harder
    assert rows["q_other"]["delta_loss"] < 0  # and anything else after 'q' easier
    other = rows["not_after_q"]
    assert other["tokens"] == every["tokens"] - pairs
    assert other["status"] == "untested" and other["tokens_routed"] == 0 and math.isnan(other["delta_loss"])
    # top-2: one filler expert beside expert 3 at each 'q', so the fillers share those positions
    fillers = [by_concept([r for r in fast if r["expert"] == e]) for e in range(3)]
    assert sum(r["after_q"]["tokens_routed"] for r in fillers) == pairs
    for r in fillers:
        assert (r["after_q"]["status"] == "tested") == (r["after_q"]["tokens_routed"] > 0)


def test_concept_rows_of_both_sweeps_agree(trigger_rows):
    fast, ref = trigger_rows
    assert len(fast) == len(ref) == 4 * 5  # experts x (every token + 4 concepts), one domain
    for a, b in zip(fast, ref):
        assert {k: a[k] for k in ("expert", "concept", "status", "tokens", "tokens_routed")} == \
               {k: b[k] for k in ("expert", "concept", "status", "tokens", "tokens_routed")}
        for k in ("delta_loss", "kl", "delta_loss_routed"):
            assert (math.isnan(a[k]) and math.isnan(b[k])) or abs(a[k] - b[k]) <= 1e-5 * max(1, abs(b[k])), (k, a, b)


def test_concept_rows_equal_the_per_token_delta_recomputed_by_hand():
    model = domain_model()
    adapter = get_adapter(model)
    tok = char_tokenizer()
    texts = {"alpha": [walk(A, 2 * i, 19) for i in range(3)], "beta": [walk(B, i, 13) for i in range(2)]}
    docs = [LabelledDocument(t, d) for d, ts in texts.items() for t in ts]
    vowel = concepts_of(["vowel=regex:[aeiou]"])
    windows = make_windows(docs, tok, ctx=8, batch_size=3, concepts=vowel)
    rows = [r for r in sweep(model, adapter, windows, [Cell(0, 0)]) if r["concept"] == "vowel"]
    sums = {d: [0.0, 0, 0, 0.0] for d in ("alpha", "beta")}  # Δ CE, tokens, routed, Δ CE routed
    for d, ts in texts.items():
        for text in ts:
            for a in range(0, len(text), 8):
                chunk = text[a:a + 8]
                ids = torch.tensor([tok(chunk)["input_ids"]])
                d_ce = measure(model, ids, [Intervention(0, 0, "zero")], adapter=adapter).delta_ce[0]
                for t in range(len(chunk) - 1):
                    if chunk[t + 1] in "aeiou":  # the loss at t predicts token t+1
                        routed = chunk[t] in A  # expert 0 takes the letters of A
                        s = sums[d]
                        s[0], s[1], s[2] = s[0] + float(d_ce[t]), s[1] + 1, s[2] + routed
                        s[3] += float(d_ce[t]) * routed
    got = {r["domain"]: r for r in rows}
    for d in ("alpha", "beta"):
        r, (dce, n, routed, dce_routed) = got[d], sums[d]
        assert (r["tokens"], r["tokens_routed"]) == (n, routed)
        if routed:
            assert r["delta_loss"] == pytest.approx(dce / n, rel=1e-5, abs=1e-7)
            assert r["delta_loss_routed"] == pytest.approx(dce_routed / routed, rel=1e-5, abs=1e-7)
    assert got["alpha"]["delta_loss"] > 0.01 and got["beta"]["status"] == "untested"
    assert got["all"]["tokens"] == sums["alpha"][1] + sums["beta"][1]


def test_a_tokenizer_without_offsets_is_refused_in_one_line():
    class Slow:
        is_fast = False

        def __call__(self, text, **kw):
            return {"input_ids": [2] * len(text)}

    docs = [LabelledDocument("abcdef", "x")]
    assert len(make_windows(docs, Slow(), 4, 2).batches) == 1  # without concepts it is fine
    with pytest.raises(DataError, match="fast tokenizer"):
        make_windows(docs, Slow(), 4, 2, concepts=concepts_of(["regex:a"]))


def test_cli_table_layout_unknown_concept_and_concept_without_tokens(planted_dirs, tmp_path, capsys):
    base = ["causal", "ablate", "--model", planted_dirs["domain"], "--corpus", planted_dirs["alpha"],
            planted_dirs["beta"], "--ctx", "16", "--no-figures", "--quiet"]
    bad = run_cli(*base, "--concepts", "numeratr", "--out", tmp_path / "bad")
    assert_user_error(bad, "unknown concept", "did you mean numerator", "list_concepts")
    assert not (tmp_path / "bad").exists()

    out = tmp_path / "ok"  # in process: a second interpreter start would only cost time
    threads = torch.get_num_threads()
    try:
        assert cli.main([*map(str, base), "--threads", "1", "--concepts", "vowel=regex:[aeiou]",
                         "digits=regex:[0-9]", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "warning" in err and "digits" in err and "vowel" not in err
    table = pd.read_csv(out / "ablate.csv", keep_default_na=False, na_values=[""])
    assert len(table) == 8 * 3 * 3  # experts x (all, alpha, beta) x (every token, vowel, digits)
    plain = table[table["concept"] == "all"]
    assert list(plain["domain"][:3]) == ["all", "alpha", "beta"] and len(plain) == 8 * 3
    assert (table[table["concept"] == "digits"]["status"] == "untested").all()
    vowel = table[(table["concept"] == "vowel") & (table["domain"] == "beta")]
    assert (vowel["status"] == "tested").sum() == 2  # experts 2 and 3 take the letters of B
    summary = json.loads((out / "summary.json").read_text())
    assert summary["concepts"]["digits"] == 0 and summary["concepts"]["vowel"] > 0
    assert summary["cells"] == 8
