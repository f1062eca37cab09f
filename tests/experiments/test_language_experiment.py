"""``moelens experiment language`` end to end on the tiny preset, killed with SIGKILL in the
middle of a stage and resumed: finished stages are not redone, and the report holds every
claim's table. The corpora come from a fake system tree (prose, LaTeX) and this interpreter's
standard library (code), so the test needs no Debian package."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from clitools import ROOT, assert_user_error, cli_env, run_cli

WORDS = ("the a river stone light city old green quickly Paris Monday seven 42 1999 runs "
         "builds saw under over and but because if NASA it they we small large bright").split()


def _prose(rng: np.random.Generator, n: int) -> str:
    paras = []
    for _ in range(n):
        sents = []
        for _ in range(int(rng.integers(3, 6))):
            words = list(rng.choice(WORDS, size=int(rng.integers(5, 12))))
            sents.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", ";"]))
        paras.append(" ".join(sents))
    return "\n\n".join(paras) + "\n"


def _tex(rng: np.random.Generator, i: int) -> str:
    body = " ".join(f"We have $x_{{{j}}}^2 = \\frac{{a+{j}}}{{b}}$ as in \\cite{{k{j}}}."
                    for j in rng.integers(0, 9, size=12))
    return (f"\\documentclass{{article}}\n\\title{{Note {i}}}\n\\author{{Ada}}\n"
            f"\\begin{{document}}\n\\begin{{abstract}}\nShort {i}.\n\\end{{abstract}}\n{body}\n"
            f"\\[ y_{{i}} = \\frac{{1}}{{2}} \\]\n\\end{{document}}\n")


def fake_tree(root):
    """Debian-looking files for the prose and LaTeX sources."""
    rng = np.random.default_rng(0)
    docs = root / "usr/share/doc/python3.11/html/_sources/library"
    docs.mkdir(parents=True)
    for i in range(6):
        (docs / f"m{i}.rst.txt").write_text(_prose(rng, 8))
    jargon = root / "usr/share/doc/jargon-text"
    jargon.mkdir(parents=True)
    (jargon / "jargon.txt.gz").write_bytes(gzip.compress(_prose(rng, 30).encode()))
    tex = root / "usr/share/doc/texlive-doc/latex/notes"
    tex.mkdir(parents=True)
    for i in range(6):
        (tex / f"n{i}.tex.gz").write_bytes(gzip.compress(_tex(rng, i).encode()))


def test_tiny_language_experiment_end_to_end_resumes_after_sigkill(tmp_path):
    root, out = tmp_path / "root", tmp_path / "run"
    fake_tree(root)
    args = ["experiment", "language", "--preset", "language-tiny", "--out", str(out),
            "--corpus.system_root", str(root),
            "--corpus.sources", "python_stdlib", "python_docs", "jargon_file", "texlive_doc"]
    proc = subprocess.Popen([sys.executable, "-m", "moelens", *args, "--quiet"], cwd=ROOT,
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    finished = out / "probe-dense_gelu-s1" / "DONE"  # late: the extra seed's stages
    running = out / "probe-switch-s1" / "config.json"  # the next stage has begun
    deadline = time.monotonic() + 300
    while not (finished.exists() and running.exists()) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-2000:])
    assert not (out / "report").exists() and not (out / "probe-switch-s1" / "DONE").exists()
    weights = [out / f"train-{m}" / "train" / "model" / "model.safetensors"
               for m in ("moex", "moex-s1")]
    probed = out / "probe-dense_gelu-s1" / "probe" / "summary.json"
    before = [w.stat().st_mtime_ns for w in weights], probed.read_text()

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    for title in ("train moex", "capture moex's units", "SAE on the dense MLP",
                  "k-sparse probing of dense_gelu", "train moex-s1",
                  "k-sparse probing of dense_gelu-s1"):
        assert f"{title} ... done before" in again.stdout
    assert "k-sparse probing of switch-s1 ... done in" in again.stdout
    assert ([w.stat().st_mtime_ns for w in weights], probed.read_text()) == before  # not redone

    summary = json.loads((out / "summary.json").read_text())
    models = ["dense_gelu", "switch", "moex", "switch_k1"]
    assert {f"train-{m}" for m in models} | {"sae", "neurons-moex", "knowledge-switch_k1",
                                             "trigger-moex", "specialize-switch"} \
        <= set(summary["stages"])
    assert summary["stages"]["corpora"]["summary"]["documents"]["latex"] > 0
    rep = out / "report"
    trained = pd.read_csv(rep / "models.csv")
    assert list(trained["model"]) == models + ["dense_gelu-s1", "switch-s1", "moex-s1"]
    assert list(trained["seed"]) == [0] * 4 + [1] * 3 and (trained["perplexity"] > 1).all()
    # another seed is another model: same data and sizes, other weights and loss
    losses = trained.set_index("model")["val_loss"]
    assert losses["moex"] != losses["moex-s1"]
    # equal active parameters: expert width = active width / top-k
    for model, k, width in (("switch_k1", 1, 64), ("switch", 2, 32), ("moex", 2, 32)):
        cfg = json.loads((out / f"train-{model}" / "train" / "model" / "config.json").read_text())
        assert (cfg["top_k"], cfg["expert_width"], cfg["num_experts"]) == (k, width, 4)
    dense = json.loads((out / "train-dense_gelu" / "train" / "model" / "config.json").read_text())
    assert dense["ffn_width"] == 64
    fig8 = pd.read_csv(rep / "fig8.csv")
    assert len(fig8) == 4 and (fig8["neurons"] == 8).all()
    deciles = pd.read_csv(rep / "fig8_deciles.csv")
    assert set(deciles["decile"]) == set(range(11)) and deciles["rate"].dropna().between(0, 1).all()
    probe = pd.read_csv(rep / "probe.csv")
    fams = set(probe[probe["model"] == "moex"]["family"])
    assert {"expert", "routed_tokens", "random_routing", "dense_store", "shuffled_labels"} <= fams
    assert set(probe[probe["model"] == "dense_gelu"]["family"]) == {"ffn"}
    assert probe["mean"].between(0, 1).all() and probe["concepts"].max() >= 20
    gaps = pd.read_csv(rep / "probe_gaps.csv")
    row = gaps[(gaps["model"] == "moex") & (gaps["k"] == 1)].iloc[0]
    assert abs(row["gap_paper"] - (row["moe_paper"] - row["dense_paper"])) < 1e-9
    # over training seeds: each claim's number per seed, then mean and sd
    fig8_seeds = pd.read_csv(rep / "fig8_seeds.csv")
    assert sorted(zip(fig8_seeds["units"], fig8_seeds["seed"])) == sorted(
        (k, s) for k in ("dense_gelu", "switch", "moex") for s in (0, 1))
    f8 = pd.read_csv(rep / "fig8_seeds_summary.csv").set_index("units")
    det = fig8_seeds.groupby("units")["detection"]
    assert np.allclose(f8.loc[det.mean().index, "detection_mean"], det.mean())
    assert np.allclose(f8.loc[det.std().index, "detection_sd"], det.std())
    per = pd.read_csv(rep / "probe_seeds.csv")
    per_gaps = pd.read_csv(rep / "probe_gaps_seeds.csv")
    assert set(per_gaps["seed"]) == {0, 1} and set(per_gaps["model"]) == {"switch", "moex"}

    def best(model, seed, k):
        sel = per[(per["model"] == model) & (per["seed"] == seed) & (per["k"] == k)
                  & (per["statistic"] == "best_unit_f1")
                  & (per["family"] == ("ffn" if model == "dense_gelu" else "expert"))]
        return float(sel["mean"].iloc[0])

    for _, r in per_gaps.iterrows():  # the MoE against the dense model of its own seed
        assert abs(r["gap_paper"] - (best(r["model"], r["seed"], r["k"])
                                     - best("dense_gelu", r["seed"], r["k"]))) < 1e-9
    summ = pd.read_csv(rep / "probe_gaps_seeds_summary.csv")
    row = summ[(summ["model"] == "moex") & (summ["k"] == 1)].iloc[0]
    one = per_gaps[(per_gaps["model"] == "moex") & (per_gaps["k"] == 1)]["gap_paper"]
    assert row["seeds"] == 2 and abs(row["gap_paper_mean"] - one.mean()) < 1e-9
    assert abs(row["gap_paper_sd"] - one.std()) < 1e-9
    sparsity = pd.read_csv(rep / "probe_sparsity.csv")
    assert sorted(sparsity["routing_density"]) == [0.25, 0.5, 0.5]
    labels = pd.read_csv(rep / "labels.csv")
    assert sorted(labels["model"]) == ["moex", "switch", "switch_k1"]
    assert (labels["experts"] == 2 * 4).all()
    spec = pd.read_csv(rep / "specialization.csv")
    assert set(spec["view"]) == {"input", "output"} and (spec["jsd"] >= 0).all()
    know = pd.read_csv(rep / "knowledge.csv")
    assert set(know["target_domain"]) == {"prose", "code", "latex"}
    assert {"specificity", "control_specificity"} <= set(know.columns)
    # every domain has text in the control's corpus: ablations move the loss of each of them
    assert (know.groupby("target_domain")["ranked_delta_target"].agg(lambda x: x.abs().max())
            > 0).all()
    shares = summary["stages"]["knowledge-moex"]["summary"]["tokens_per_domain"]
    assert len(set(shares.values())) == 1 and set(shares) == {"prose", "code", "latex"}
    assert (rep / "trigger.csv").exists()
    tables = (rep / "tables.md").read_text()
    for needle in ("Claim 1", "Claim 2", "Claim 3", "0.667", "0.918", "shuffled_labels",
                   "over training seeds", "(n=2)"):
        assert needle in tables
    for fig in ("fig8_deciles.png", "probe_sparsity.png"):
        assert (rep / "figures" / fig).stat().st_size > 1000


def test_bad_settings_are_one_line(tmp_path):
    base = ["experiment", "language", "--out", str(tmp_path / "x")]
    assert_user_error(run_cli(*base, "--lm.active_width", "510"), "not divisible by top-k 4")
    assert_user_error(run_cli(*base, "--corpus.kinds", "poetry"), "--corpus.kinds must be among")
    assert_user_error(run_cli(*base, "--layer", "7"), "not a layer of a 4-layer model")
    assert not (tmp_path / "x").exists()
