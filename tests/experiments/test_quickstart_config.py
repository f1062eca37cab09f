"""The quickstart's settings: every shipped preset parses, the stages it plans hold together."""

from __future__ import annotations

import pytest

from moelens import config
from moelens.errors import ConfigError
from moelens.experiments.quickstart import QuickstartConfig
from moelens.experiments.quickstart_stages import MOE_PRESETS, steps, train_config

PRESETS = config.available_presets("quickstart")


def _parse(*argv: str) -> QuickstartConfig:
    return config.parse(QuickstartConfig, list(argv), prog="moelens quickstart",
                        preset_kind="quickstart")


def test_presets_ship_and_parse():
    assert {"quickstart-tiny", "quickstart-gpu", "quickstart-gpu-paper"} <= set(PRESETS)
    for name in PRESETS:
        cfg = _parse("--preset", name, "--out", "x")
        names = [s.name for s in steps(cfg)]
        assert names[0] == "data" and names[-3:] == ["boardgame", "interpret", "specialize"]


def test_models_are_matched_in_activated_width():
    cfg = _parse("--out", "x")
    for name in cfg.model.models:
        tc = train_config(cfg, cfg.out, name)
        assert tc.resume and tc.max_iters == cfg.train.max_iters
        if name in MOE_PRESETS:
            assert (tc.model.top_k, tc.model.expert_width) == (cfg.model.top_k,
                                                                cfg.model.expert_width)
        else:
            assert tc.model.ffn_width == cfg.model.top_k * cfg.model.expert_width


def test_stage_settings_change_with_what_decides_them():
    a, b = _parse("--out", "x"), _parse("--out", "x", "--train.max_iters", "7")
    sa, sb = ({s.name: s.settings for s in steps(c)} for c in (a, b))
    assert sa["data"] == sb["data"]  # training settings do not redo the games
    assert sa["train-moex"] != sb["train-moex"] and sa["probe"] != sb["probe"]
    c = _parse("--out", "x", "--interpret.n_test", "9", "--board.probe_steps", "9")
    sc = {s.name: s.settings for s in steps(c)}
    changed = {n for n in sa if sa[n] != sc[n]}
    assert changed == {"interpret", "boardgame"}  # an analysis's settings redo only it
    w = _parse("--out", "x", "--games.workers", "1")
    assert {s.name: s.settings for s in steps(w)} == sa  # workers do not change the games


@pytest.mark.parametrize("argv, message", [
    (["--model.models", "dense-gelu", "dense-gelu"], "distinct"),
    (["--model.models", "gpt5"], "unknown model preset"),
    (["--model.top_k", "9"], "top_k"),
    (["--games.val_fraction", "1.5"], "val_fraction"),
    (["--train.max_iters", "0"], "max_iters"),
    (["--interpret.scorers", "vibes"], "interpret.scorers"),
    (["--board.legal_prompts", "0"], "legal_prompts"),
])
def test_bad_settings(argv, message):
    with pytest.raises(ConfigError, match=message):
        _parse("--out", "x", *argv)
