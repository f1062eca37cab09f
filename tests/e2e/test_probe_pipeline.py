"""End to end on tiny models: an MoE and a dense model -> capture -> probe -> table -> figures.

Two seeded Hugging Face models (OLMoE with 4 experts top-2, and Llama) share a byte-level BPE
tokenizer trained here; a few KB of prose and code written here is captured with the real
``moelens capture`` and probed with the real ``moelens probe`` (real store, real concept
registry), then both runs are compared. Nothing is faked; every command runs as a user runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clitools import assert_user_error, run_cli

from moelens.analysis.probing import concepts as concept_glue
from moelens.analysis.probing.dataset import layer_units
from moelens.data.concepts import list_concepts
from moelens.store import ActivationStore

CONCEPTS = ["word_initial_capital", "contains_digit", "operator", "digit_re=regex:[0-9]"]
PROBE = ["--concepts", *CONCEPTS, "--ks", "1", "2", "4", "--seeds", "42", "--bootstrap", "100",
         "--quiet"]
DOCUMENTED = ["model", "concept", "group", "layer", "space", "expert", "k", "f1", "precision",
              "recall", "n_pos", "n_neg", "status", "semantics", "selection", "seed"]


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def pipeline(e2e_stores) -> dict[str, Path]:
    """Both stores probed, and the two runs compared."""
    root, paths = e2e_stores["root"], dict(e2e_stores)
    for name in ("moe", "dense"):
        paths[f"probe_{name}"] = root / f"probe_{name}"
        _ok(run_cli("probe", "--store", paths[f"store_{name}"], "--out", paths[f"probe_{name}"],
                    "--model", f"tiny-{name}", *PROBE))
    paths["compare"] = root / "compare"
    _ok(run_cli("probe", "--compare", paths["probe_moe"], paths["probe_dense"],
                "--out", paths["compare"]))
    return paths


def test_concepts_used_here_exist():
    names = {c.name for g in ("text", "code") for c in list_concepts(g)}
    assert {"word_initial_capital", "contains_digit", "operator"} <= names


def test_tidy_table_units_and_metrics(pipeline):
    for name, unit_space in (("moe", "expert"), ("dense", "ffn")):
        out = pipeline[f"probe_{name}"]
        df, csv = pd.read_parquet(out / "probe.parquet"), pd.read_csv(out / "probe.csv")
        assert set(DOCUMENTED) <= set(df.columns) and list(csv.columns) == list(df.columns)
        assert len(csv) == len(df) and (out / "DONE").exists()
        assert set(df.model) == {f"tiny-{name}"} and set(df.seed) == {42} and set(df.k) == {1, 2, 4}
        assert set(df.concept) == {"word_initial_capital", "contains_digit", "operator", "digit_re"}
        assert set(df.layer) == {0, 1}
        units = df[df.control == "none"]
        assert set(units.space) == {unit_space}
        if name == "moe":
            assert set(units.expert) == {0, 1, 2, 3}
        else:
            assert set(units.expert) == {-1}
        ok = df[df.status == "ok"]
        assert len(ok[ok.control == "none"]) > 0
        assert ok[["f1", "precision", "recall"]].notna().all().all()
        assert ((ok.f1 >= 0) & (ok.f1 <= 1)).all()
        assert (ok[["n_pos", "n_neg"]] >= 50).all().all()
        assert df[df.status != "ok"].f1.isna().all()
        # the user regex labels exactly the tokens contains_digit labels: same samples, same fits
        # (the random controls draw per concept, so only the units and same-token baselines)
        key = ["layer", "space", "expert", "control", "k", "selection"]
        same = df[df.control.isin(["none", "routed_tokens"])]
        a = same[same.concept == "contains_digit"].sort_values(key).reset_index(drop=True)
        b = same[same.concept == "digit_re"].sort_values(key).reset_index(drop=True)
        assert len(a) == len(b) > 0
        assert np.allclose(a.f1, b.f1, equal_nan=True) and (a.n_pos == b.n_pos).all()
        assert set(b.group) == {"user"}


def test_expert_datasets_are_the_routed_tokens(pipeline):
    """On the real store, expert e's dataset is the sampled tokens the router sent to e."""
    store = ActivationStore.open(pipeline["store_moe"])
    (digit,) = concept_glue.resolve(["contains_digit"])
    sample = concept_glue.sample(store, digit, 5000, 42)
    ids, _ = store.routing(1)
    units = [u for u in layer_units(store, 1, [sample], seed=42, kmax=4)
             if u.meta["control"] == "none"]
    assert [u.meta["expert"] for u in units] == [0, 1, 2, 3]
    for u in units:
        routed = np.flatnonzero((ids == u.meta["expert"]).any(1))
        assert u.n_pos == np.isin(sample.pos, routed).sum()
        assert u.n_neg == np.isin(sample.neg, routed).sum()


def test_summary_and_figures(pipeline):
    for name, kind in (("moe", "moe"), ("dense", "dense")):
        summ = json.loads((pipeline[f"probe_{name}"] / "summary.json").read_text())
        assert summ["model"]["kind"] == kind and summ["model"]["name"] == f"tiny-{name}"
        assert summ["main_family"] == ("expert" if kind == "moe" else "ffn")
        if kind == "moe":
            assert summ["model"]["routing_density"] == pytest.approx(0.5)
        for k, v in summ["headline"]["best_unit_f1"].items():
            assert 0 <= v <= 1, (k, v)
        figs = pipeline[f"probe_{name}"] / "figures"
        for stem in ("f1_vs_k",):
            for ext in ("png", "svg"):
                assert (figs / f"{stem}.{ext}").stat().st_size > 0
    for stem in ("compare_f1_vs_k", "compare_scatter_k1", "compare_density_k1"):
        for ext in ("png", "svg"):
            assert (pipeline["compare"] / f"{stem}.{ext}").stat().st_size > 0


def test_rerun_skips_and_overwrite_rewrites(pipeline):
    out = pipeline["probe_moe"]
    before = pd.read_parquet(out / "probe.parquet")
    mtime = (out / "probe.parquet").stat().st_mtime_ns
    args = ["probe", "--store", pipeline["store_moe"], "--out", out, "--model", "tiny-moe", *PROBE]
    proc = run_cli(*args)
    _ok(proc)
    assert "already done" in proc.stdout
    assert (out / "probe.parquet").stat().st_mtime_ns == mtime
    other = run_cli(*args, "--bootstrap", "17")  # other settings: never the old results silently
    assert_user_error(other, "other settings", "bootstrap", "--overwrite")
    assert (out / "probe.parquet").stat().st_mtime_ns == mtime
    _ok(run_cli(*args, "--overwrite"))
    after = pd.read_parquet(out / "probe.parquet")
    assert (out / "probe.parquet").stat().st_mtime_ns != mtime
    assert len(after) == len(before) and not after.duplicated(
        ["concept", "layer", "space", "expert", "control", "k", "selection", "seed"]).any()
    pd.testing.assert_frame_equal(after, before)  # seeded: the same numbers again
    assert not (out / "parts").exists()


def test_bad_input_on_the_real_store(pipeline, tmp_path):
    moe, dense = pipeline["store_moe"], pipeline["store_dense"]
    proc = run_cli("probe", "--store", moe, "--out", tmp_path / "a", "--concepts", "no_such_concept")
    assert_user_error(proc, "unknown concept", "no_such_concept")
    proc = run_cli("probe", "--store", moe, "--out", tmp_path / "b", "--concepts", "contains_digit",
                   "--spaces", "ffn")
    assert_user_error(proc, "ffn")
    proc = run_cli("probe", "--store", dense, "--out", tmp_path / "c", "--ks", "1", "128")
    assert_user_error(proc, "ks", "128")
    proc = run_cli("probe", "--store", moe, "--out", tmp_path / "d", "--dense_store", moe)
    assert_user_error(proc, "no ffn")
    assert not any((tmp_path / d).exists() for d in "abcd")  # nothing left that looks like a run


def test_a_concept_without_positives_is_reported(pipeline, tmp_path):
    out = tmp_path / "starved"
    proc = run_cli("probe", "--store", pipeline["store_dense"], "--out", out, "--concepts",
                   "contains_digit", "never=regex:QZXJQZXJ", "--ks", "1", "--seeds", "1",
                   "--bootstrap", "10", "--no-figures")
    _ok(proc)
    assert "left out of the averages: never" in proc.stdout
    df = pd.read_parquet(out / "probe.parquet")
    assert set(df[df.concept == "never"].status) == {"not enough samples"}
    assert (df[df.concept == "contains_digit"].status == "ok").any()


def test_ks_wider_than_every_unit_is_an_error(e2e_stores, tmp_path):
    """The tiny OLMoE's experts are 16 wide: --ks 32 64 can fit nothing, so it must not finish
    as a run with an empty headline."""
    out = tmp_path / "wide"
    proc = run_cli("probe", "--store", e2e_stores["store_moe"], "--out", out, "--ks", "32", "64",
                   "--concepts", "contains_digit", "--seeds", "1")
    assert_user_error(proc, "--ks", "16")
    assert not out.exists()


def test_a_store_without_tokens_is_an_error(e2e_stores, tmp_path):
    import shutil

    empty = tmp_path / "empty_store"
    shutil.copytree(e2e_stores["store_dense"], empty)
    manifest = json.loads((empty / "manifest.json").read_text())
    manifest.update(n_tokens=0, shards=[])  # what a capture of nothing would describe
    (empty / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "o"
    proc = run_cli("probe", "--store", empty, "--out", out, "--concepts", "contains_digit",
                   "--ks", "1", "--seeds", "1")
    assert_user_error(proc, "no tokens")
    assert not out.exists()


def test_registry_duplicates_are_counted_once(e2e_stores, tmp_path):
    """The registry marks ``digits`` as labelling what ``contains_digit`` labels: one concept."""
    out = tmp_path / "dup"
    proc = run_cli("probe", "--store", e2e_stores["store_dense"], "--out", out, "--concepts",
                   "digits", "contains_digit", "--ks", "1", "--seeds", "1", "--bootstrap", "10",
                   "--no-figures")
    _ok(proc)
    summ = json.loads((out / "summary.json").read_text())
    assert summ["duplicates"] == {"digits": "contains_digit"}
    counts = {r["n_concepts"] for r in summ["aggregates"] if r["family"] == "ffn"}
    assert counts == {1}
    assert set(pd.read_parquet(out / "probe.parquet").concept) == {"digits", "contains_digit"}
