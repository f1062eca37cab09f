"""The language experiment's seed and SmolLM2 tables, on hand-made stage folders: seed names
parse back, the summary over seeds is the sample mean and sd, and SmolLM2's row counts its yes
answers and the explanations that copy the prompt's worked example."""

from __future__ import annotations

import json

import pandas as pd

from moelens.experiments.language_models import split_seed
from moelens.experiments.language_seeds import smollm2_table, summarize

EXAMPLE = "the word naming a numbered part of a paper"


def _unit(path, name, text, tp, fp, answered):
    prompt = [{"role": "user", "content": "excerpts"}, {"role": "assistant", "content": EXAMPLE},
              {"role": "user", "content": "the unit's excerpts"}]
    rec = {"unit": {"name": name}, "status": "ok",
           "explanation": {"text": text, "prompt": prompt},
           "scores": {"detection": {"metrics": {"tp": tp, "fp": fp, "answered": answered}}}}
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.json").write_text(json.dumps(rec))


def test_seed_names_and_summary():
    assert split_seed("moex-s12") == ("moex", 12)
    assert split_seed("switch_k1") == ("switch_k1", None) and split_seed("sae") == ("sae", None)
    df = pd.DataFrame({"units": ["a"] * 3 + ["b"], "seed": [0, 1, 2, 0],
                       "detection": [0.6, 0.7, 0.8, 0.5]})
    out = summarize(df, ["units"], ["detection"]).set_index("units")
    assert out.loc["a", "seeds"] == 3 and abs(out.loc["a", "detection_mean"] - 0.7) < 1e-12
    assert abs(out.loc["a", "detection_sd"] - 0.1) < 1e-12  # sample sd (ddof 1)
    assert out.loc["b", "seeds"] == 1 and pd.isna(out.loc["b", "detection_sd"])


def test_smollm2_row_counts_yes_answers_and_copied_examples(tmp_path):
    stage = tmp_path / "neurons-hf-moex"
    units = stage / "interpret" / "units"
    _unit(units, "u0", "The word naming a numbered part", 3, 3, 6)  # a piece of the example
    _unit(units, "u1", "closing brackets in code", 3, 2, 6)
    summ = {"units": 2, "status": {"ok": 2},
            "table": [{"scorer": "embedding", "metric": "auroc", "mean": 0.4, "ci_low": 0.3,
                       "ci_high": 0.5}]}
    (stage / "interpret" / "summary.json").write_text(json.dumps(summ))
    (stage / "rules_embedding").mkdir()
    (stage / "rules_embedding" / "summary.json").write_text(json.dumps(
        {**summ, "table": [{**summ["table"][0], "mean": 0.6}]}))
    row = smollm2_table(tmp_path, {"neurons-hf-moex": {}}).iloc[0]
    assert abs(row["judge_yes_share"] - 11 / 12) < 1e-12
    assert (row["explanations"], row["distinct_explanations"]) == (2, 2)
    assert row["explanations_copying_example"] == 1
    assert (row["smollm2_embedding_auroc"], row["rules_embedding_auroc"]) == (0.4, 0.6)


def test_smollm2_switches_leave_the_other_stages_settings_alone():
    """Adding SmolLM2 to a finished run adds its stages and leaves every other stage's settings
    as they were (a change there would make the finished stages stale)."""
    from moelens.config import from_dict
    from moelens.experiments.language import LanguageExperimentConfig, steps

    def settings(**switches):
        cfg = from_dict(LanguageExperimentConfig, {"out": "x", **switches})
        return {st.name: st.settings for st in steps(cfg)}

    off = settings()
    on = settings(neurons={"smollm2": True}, experts={"smollm2": True})
    assert set(on) - set(off) and all(n.startswith(("neurons-hf-", "labels-hf-"))
                                      for n in set(on) - set(off))
    assert {n: on[n] for n in off} == off


def test_mean_sd_uses_the_sample_sd_and_skips_missing_values():
    from moelens.experiments.seed_stats import mean_sd

    assert mean_sd([1.0, 2.0, 3.0, None, float("nan")]) == "2.000 ± 1.000 (n=3)"
    assert mean_sd([0.25], digits=2) == "0.25" and mean_sd([]) == "–"
    assert mean_sd([0.25], single="{:.{d}f} (n=1)", none="-") == "0.250 (n=1)"
