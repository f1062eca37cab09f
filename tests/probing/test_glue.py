"""The store/concept glue and the ``probe`` command, on an in-memory fake store and registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from moelens import cli
from moelens.analysis.probing import concepts as concept_glue
from moelens.analysis.probing import controls, probe_units, runs
from moelens.analysis.probing import run as probing_run
from moelens.analysis.probing.dataset import layer_units

from .fakes import PLANTED, FakeRegistry, FakeStore


@pytest.fixture
def fake(monkeypatch):
    store = FakeStore()
    monkeypatch.setattr(concept_glue, "_registry", lambda: FakeRegistry())
    monkeypatch.setattr(probing_run, "open_store", lambda path: store)
    return store


def test_concept_sampling_uses_documents(fake):
    (digit,) = concept_glue.resolve(["digit"])
    labels, eligible = concept_glue.token_label_array(fake, digit)
    assert eligible.all()
    docs, offs, ids = fake.documents(), fake.offsets(), fake.doc_ids()
    i = int(np.flatnonzero(labels)[0])
    assert docs[ids[i]][offs[i, 0]:offs[i, 1]].isdigit()
    s = concept_glue.sample(fake, digit, budget=1000, seed=1)
    assert s.pos.size == s.neg.size == 500 and labels[s.pos].all() and not labels[s.neg].any()
    assert [c.name for c in concept_glue.resolve(["all", "digit", "group:text"])] == ["digit", "capital"]


def test_layer_units_routed_datasets_and_controls(fake):
    samples = [concept_glue.sample(fake, c, 2000, 0) for c in concept_glue.resolve(["all"])]
    units = list(layer_units(fake, 0, samples, seed=0))
    kinds = {(u.meta["space"], u.meta["control"]) for u in units}
    assert kinds == {("shared", "none"), ("expert", "none"), ("expert", "shuffled_labels"),
                     ("resid", "routed_tokens"), ("resid", "random_routing")}
    ids, _ = fake.routing(0)
    for u in units:
        if u.meta["control"] == "none" and u.meta["space"] == "expert":
            e, c = u.meta["expert"], samples[0 if u.meta["concept"] == "digit" else 1]
            routed = np.flatnonzero((ids == e).any(1))
            expect = np.intersect1d(routed, np.concatenate([c.pos, c.neg]))
            assert u.n_pos + u.n_neg == expect.size  # only the tokens routed to e
    same = [u for u in units if u.meta["expert"] == 1 and u.meta["concept"] == "digit"]
    sizes = {u.meta["control"]: (u.n_pos, u.n_neg) for u in same}
    assert len(set(sizes.values())) == 1  # baselines and null are size-matched
    df = pd.DataFrame(probe_units(units, ks=(1, 2)))
    hit = df[(df.selection == "paper") & (df.k == 1) & (df.control == "none") & (df.concept == "digit")]
    best = hit.loc[hit.f1.idxmax()]
    assert (best.space, best.expert, best.f1 >= 0.95) == ("expert", PLANTED[1], True)
    null = df[(df.control == "shuffled_labels") & (df.selection == "paper")]
    assert null.f1.mean() < 0.65


def test_probe_command_end_to_end_and_rerun(fake, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["probe", "--store", "S", "--out", str(out), "--ks", "1", "4", "16", "--seeds", "3", "4",
            "--bootstrap", "50", "--quiet"]
    assert cli.main(argv) == 0
    df = pd.read_parquet(out / "probe.parquet")
    csv = pd.read_csv(out / "probe.csv")
    assert len(df) == len(csv) and set(df.seed) == {3, 4} and set(df.k) == {1, 4, 16}
    assert set(df.model) == {"fake-moe"} and set(df.semantics) == {"routed"}
    summ = json.loads((out / "summary.json").read_text())
    assert summ["main_family"] == "expert" and summ["model"]["routing_density"] == 0.5
    head = summ["headline"]["best_unit_f1"]["1"]
    d1 = df[(df.concept == "digit") & (df.k == 1) & (df.selection == "paper") & (df.control == "none")]
    c1 = df[(df.concept == "capital") & (df.k == 1) & (df.selection == "paper") & (df.control == "none")]
    digit_best = d1.groupby("seed").f1.max().mean()
    assert digit_best >= 0.95  # the planted neuron
    assert head == pytest.approx((digit_best + c1.groupby("seed").f1.max().mean()) / 2)
    assert {"val_selected_test_f1", "mean_expert_f1_at_best_layer", "experts_within_95"} <= set(summ["headline"])
    assert {"routed_tokens", "random_routing", "shuffled_labels", "shared"} <= set(summ["baselines"])
    # the within-95% histogram counts concepts, not concept x seed: one mean over seeds each
    within = summ["experts_within_95_per_concept"]["1"]
    stats = controls.concept_stats(df)
    ex = stats[(stats.family == "expert") & (stats.k == 1)]
    assert within == pytest.approx(ex.groupby("concept").experts_within_95.mean().to_dict())
    assert sorted(within) == ["capital", "digit"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["ks"] == [1, 4, 16] and (out / "DONE").exists()
    assert (out / "figures" / "f1_vs_k.png").exists() and (out / "figures" / "f1_vs_k.svg").exists()
    assert cli.main(argv) == 0  # done: skipped, nothing appended
    assert len(pd.read_parquet(out / "probe.parquet")) == len(df)
    assert cli.main(argv + ["--overwrite"]) == 0
    again = pd.read_parquet(out / "probe.parquet")
    pd.testing.assert_frame_equal(again, df)  # same inputs and seeds -> same table, not doubled
    figs = tmp_path / "cmp"
    assert cli.main(["probe", "--compare", str(out), str(out), "--out", str(figs)]) == 0
    assert (figs / "compare_f1_vs_k.svg").exists() and (figs / "compare_density_k1.png").exists()


def test_reference_fitter_through_command(fake, tmp_path):
    out = tmp_path / "ref"
    assert cli.main(["probe", "--store", "S", "--out", str(out), "--ks", "1", "--seeds", "0",
                     "--fitter", "reference", "--layers", "0", "--no-baselines", "--no-null",
                     "--no-figures", "--quiet", "--bootstrap", "0"]) == 0
    df = pd.read_parquet(out / "probe.parquet")
    assert set(df.fitter) == {"saga"} and set(df.layer) == {0}
    assert set(df.control) == {"none"}


def test_interrupted_run_resumes_from_parts(fake, tmp_path, monkeypatch):
    from moelens.analysis.probing import core

    argv = ["probe", "--store", "S", "--ks", "1", "2", "--seeds", "0", "--no-null",
            "--no-baselines", "--no-figures", "--quiet", "--bootstrap", "0"]
    assert cli.main(argv + ["--out", str(tmp_path / "whole")]) == 0
    real, calls = core.probe_units, []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(core, "probe_units", flaky)
    out = tmp_path / "resumed"
    assert cli.main(argv + ["--out", str(out)]) == 130
    assert not (out / "probe.parquet").exists() and not (out / "DONE").exists()
    assert len(list((out / "parts").rglob("*.parquet"))) == 1
    assert cli.main(argv + ["--out", str(out)]) == 0
    # items: layer 0's dense units, layer 0's experts, layer 1's experts; the first was read
    # back, not refitted: 2 calls before the interrupt + 2 after
    assert len(calls) == 4
    pd.testing.assert_frame_equal(pd.read_parquet(out / "probe.parquet"),
                                  pd.read_parquet(tmp_path / "whole" / "probe.parquet"))
    assert not (out / "parts").exists()


def test_dense_store_size_matched_baseline_and_dense_model(monkeypatch, tmp_path):
    moe, dense = FakeStore(), FakeStore(seed=5, dense=True)
    monkeypatch.setattr(concept_glue, "_registry", lambda: FakeRegistry())
    monkeypatch.setattr(probing_run, "open_store", lambda p: dense if str(p) == "D" else moe)
    base = ["--ks", "1", "--seeds", "0", "--no-null", "--no-figures", "--quiet", "--bootstrap", "0"]
    assert cli.main(["probe", "--store", "M", "--dense_store", "D", "--out", str(tmp_path / "m")] + base) == 0
    df = pd.read_parquet(tmp_path / "m" / "probe.parquet")
    ds = df[(df.control == "dense_store") & (df.selection == "paper")].set_index(["concept", "layer", "expert"])
    ex = df[(df.control == "none") & (df.space == "expert") & (df.selection == "paper")].set_index(
        ["concept", "layer", "expert"])
    assert len(ds) == len(ex) == 2 * 2 * 4
    assert (ds.loc[ex.index, "n_pos"] == ex.n_pos).all() and (ds.loc[ex.index, "n_neg"] == ex.n_neg).all()
    assert set(ds.space) == {"ffn"}
    assert cli.main(["probe", "--store", "D", "--out", str(tmp_path / "d")] + base) == 0
    summ = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summ["model"]["kind"] == "dense" and summ["main_family"] == "ffn"
    figs = tmp_path / "cmp"
    assert cli.main(["probe", "--compare", str(tmp_path / "m"), str(tmp_path / "d"), "--out", str(figs)]) == 0
    assert (figs / "compare_scatter_k1.png").exists() and (figs / "compare_experts_within_95.svg").exists()


def test_zero_filled_semantics_gives_every_labelled_token(fake):
    samples = [concept_glue.sample(fake, c, 2000, 0) for c in concept_glue.resolve(["digit"])]
    units = list(layer_units(fake, 0, samples, seed=0, semantics="zero_filled", baselines=False,
                             null=False, spaces=("expert",)))
    assert len(units) == 4
    total = samples[0].pos.size + samples[0].neg.size
    assert all(u.n_pos + u.n_neg == total for u in units)


@pytest.mark.parametrize("model_id, expected", [
    ("allenai/OLMoE-1B-7B-0924", "allenai/OLMoE-1B-7B-0924"),  # hub ids stay whole
    ("runs/quickstart/moex/model", "moex"),  # a moelens run's model folder: the run's name
    ("/data/models/tiny-olmoe", "tiny-olmoe"),
    ("", "my-store"),
])
def test_default_model_name_is_short(model_id, expected):
    from pathlib import Path

    assert runs.display_name(model_id, Path("stores/my-store")) == expected


def test_a_duplicate_concept_is_counted_once(fake, tmp_path, capsys):
    """``digits`` labels exactly what ``digit`` labels: its rows stay in the table, but the
    averages and the number of concepts count it once."""
    out = tmp_path / "dup"
    assert cli.main(["probe", "--store", "S", "--out", str(out), "--concepts", "digits", "digit",
                     "capital", "--ks", "1", "--seeds", "0", "--no-null", "--no-baselines",
                     "--no-figures", "--bootstrap", "0"]) == 0
    df = pd.read_parquet(out / "probe.parquet")
    assert set(df.concept) == {"digits", "digit", "capital"}
    summ = json.loads((out / "summary.json").read_text())
    assert summ["duplicates"] == {"digits": "digit"}
    rec = [r for r in summ["aggregates"] if r["seed"] == "all" and r["family"] == "expert"
           and r["statistic"] == "best_unit_f1" and r["k"] == 1]
    assert [r["n_concepts"] for r in rec] == [2]
    best = df[(df.selection == "paper") & (df.control == "none")].groupby("concept").f1.max()
    assert rec[0]["mean"] == pytest.approx((best["digit"] + best["capital"]) / 2)
    assert "digits" in capsys.readouterr().out  # the user is told which one was counted once


def _svg_text(path) -> str:
    import html

    return html.unescape(path.read_text())


CORRECTED = "validation-selected, test F1"
PAPER = "paper protocol (best unit on the held-out split, biased upward)"


def test_headline_leads_with_the_corrected_number_and_shows_baselines(fake, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["probe", "--store", "S", "--out", str(out), "--ks", "1", "2", "--seeds", "0",
                     "--bootstrap", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summ = json.loads((out / "summary.json").read_text())
    start = next(i for i, l in enumerate(lines) if l.strip() == "expert")
    assert lines[start + 1].strip().startswith(CORRECTED)  # the corrected number comes first
    assert lines[start + 2].strip().startswith(PAPER)
    for i, stat in ((1, "val_selected_test_f1"), (2, "best_unit_f1")):
        shown = [float(v) for v in lines[start + i].split()[-2:]]
        assert shown == pytest.approx([summ["headline"][stat][k] for k in ("1", "2")], abs=5e-4)
    text = "\n".join(lines)
    assert "routed-token baseline" in text and "size-matched baseline" in text
    routed = summ["baselines"]["routed_tokens"]["val_selected_test_f1"]["1"]
    assert f"{routed:.3f}" in text
    svg = _svg_text(out / "figures" / "f1_vs_k.svg")
    assert f"expert: {CORRECTED}" in svg and f"expert: {PAPER}" in svg and "routed-token baseline" in svg


def test_compare_uses_the_concepts_every_run_has(fake, tmp_path, capsys):
    base = ["--ks", "1", "2", "--seeds", "0", "1", "--bootstrap", "20", "--quiet"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["probe", "--store", "S", "--out", str(a), "--model", "A", *base]) == 0
    assert cli.main(["probe", "--store", "S", "--out", str(b), "--model", "B", "--concepts",
                     "digit", *base]) == 0
    capsys.readouterr()
    figs = tmp_path / "cmp"
    assert cli.main(["probe", "--compare", str(a), str(b), "--out", str(figs)]) == 0
    said = capsys.readouterr().out
    assert "left out: capital (none in B)" in said
    cmp = json.loads((figs / "compare.json").read_text())
    assert cmp["concepts"] == ["digit"] and cmp["left_out"] == {"capital": ["B"]}
    # A's mean is over digit alone, not over A's own two concepts
    stats = controls.concept_stats(pd.read_parquet(a / "probe.parquet"))
    digit = stats[(stats.family == "expert") & (stats.concept == "digit")].groupby("k")
    row = next(r for r in cmp["headline"]["A"] if r["family"] == "expert"
               and r["statistic"] == "val_selected_test_f1")
    assert row["values"] == pytest.approx({str(k): v for k, v in
                                           digit.val_selected_test_f1.mean().items()})
    own = json.loads((a / "summary.json").read_text())["headline"]["val_selected_test_f1"]["1"]
    assert own != pytest.approx(row["values"]["1"])
    for stem in ("compare_f1_vs_k", "compare_density_k1"):
        svg = _svg_text(figs / f"{stem}.svg")
        assert "left out: capital (none in B)" in svg
        assert CORRECTED in svg and PAPER in svg
    assert "routed-token baseline" in _svg_text(figs / "compare_f1_vs_k.svg")
