"""Bad input: one line on stderr, exit 2, no traceback, nothing that looks like a result."""

from __future__ import annotations

import pytest
from clitools import assert_user_error, run_cli

from moelens import cli
from moelens.analysis.probing import concepts as concept_glue
from moelens.analysis.probing import run as probing_run
from moelens.errors import StoreError

from .fakes import FakeRegistry, FakeStore


@pytest.mark.parametrize("ks, needle", [(["3"], "powers of two"), (["128"], "powers of two"),
                                        (["0"], "powers of two")])
def test_bad_ks_exit_2(tmp_path, ks, needle):
    proc = run_cli("probe", "--store", str(tmp_path), "--ks", *ks, "--out", str(tmp_path / "o"))
    assert_user_error(proc, needle)
    assert not (tmp_path / "o").exists()


def test_no_store_and_no_compare_exit_2():
    assert_user_error(run_cli("probe", "--concepts", "digit"), "--store")


def _in_process(monkeypatch, capsys, store, argv):
    monkeypatch.setattr(concept_glue, "_registry", lambda: FakeRegistry())
    monkeypatch.setattr(probing_run, "open_store", lambda path: store)
    code = cli.main(["probe", "--store", "S", *argv])
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    return code, err


def test_unknown_concept_is_config_error(monkeypatch, capsys, tmp_path):
    code, err = _in_process(monkeypatch, capsys, FakeStore(),
                            ["--concepts", "nonsense", "--out", str(tmp_path / "o")])
    assert code == 2 and len(err) == 1 and "unknown concept 'nonsense'" in err[0]
    assert not (tmp_path / "o").exists()


def test_store_without_needed_space(monkeypatch, capsys, tmp_path):
    code, err = _in_process(monkeypatch, capsys, FakeStore(),
                            ["--spaces", "ffn", "--out", str(tmp_path / "o")])
    assert code == 2 and len(err) == 1 and "none of the spaces ffn" in err[0]
    code, err = _in_process(monkeypatch, capsys, FakeStore(with_resid=False),
                            ["--baseline_space", "resid", "--out", str(tmp_path / "o")])
    assert code == 2 and len(err) == 1 and "baseline space 'resid'" in err[0]
    assert not (tmp_path / "o").exists()


def test_missing_store_and_bad_layer(monkeypatch, capsys, tmp_path):
    def missing(path):
        raise StoreError(f"no activation store at {path}; run 'moelens capture' first")

    monkeypatch.setattr(probing_run, "open_store", missing)
    assert cli.main(["probe", "--store", str(tmp_path / "nope")]) == 2
    assert "no activation store" in capsys.readouterr().err
    code, err = _in_process(monkeypatch, capsys, FakeStore(), ["--layers", "7"])
    assert code == 2 and len(err) == 1 and "layers [7]" in err[0]


def test_compare_needs_finished_runs(tmp_path):
    proc = run_cli("probe", "--compare", str(tmp_path), "--out", str(tmp_path / "f"))
    assert_user_error(proc, "not a finished probe run")


def test_help_lists_the_options():
    proc = run_cli("probe", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--fitter" in proc.stdout and "--compare" in proc.stdout
