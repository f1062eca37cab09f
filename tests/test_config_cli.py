"""The config system and the CLI's error contract (one line, exit 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from moelens import cli, config
from moelens.errors import ConfigError


@dataclass
class Inner:
    width: int = 4
    """how wide"""


@dataclass
class Outer:
    name: str = "x"
    """a name"""
    ks: list[int] = field(default_factory=lambda: [1, 2])
    """the ks"""
    mode: Literal["a", "b"] = "a"
    """which mode"""
    flag: bool = False
    """a switch"""
    inner: Inner = field(default_factory=Inner)
    """nested settings"""
    limit: float | None = None
    """optional limit"""


def test_field_docs_are_read_from_source():
    docs = config.field_docs(Outer)
    assert docs["name"] == "a name" and docs["inner"] == "nested settings"
    assert config.field_docs(Inner)["width"] == "how wide"


def test_parse_flags_nested_and_types(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("name: fromfile\ninner:\n  width: 7\n")
    cfg = config.parse(Outer, ["--config", str(yaml_file), "--ks", "1", "4", "--flag",
                               "--mode", "b", "--inner.width", "9", "--limit", "0.5"], prog="t")
    assert cfg.name == "fromfile" and cfg.ks == [1, 4] and cfg.flag is True
    assert cfg.mode == "b" and cfg.inner.width == 9 and cfg.limit == 0.5
    assert config.from_dict(Outer, config.to_dict(cfg)) == cfg


@pytest.mark.parametrize("argv", [["--mode", "c"], ["--inner.width", "wide"], ["--nope", "1"]])
def test_bad_values_are_config_errors(argv):
    with pytest.raises(ConfigError):
        config.parse(Outer, argv, prog="t")


def test_unknown_yaml_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown setting inner.depth"):
        config.from_dict(Outer, {"inner": {"depth": 3}})


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        config.load_preset("nope")


def test_cli_unknown_command_one_line_exit_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown command 'frobnicate'" in err[0]


def test_python_dash_m_help_works():
    from clitools import run_cli
    out = run_cli("--help")
    assert out.returncode == 0 and "capture" in out.stdout


def test_hyphen_and_underscore_flags_are_the_same_setting():
    @dataclass
    class Cfg:
        n_games: int = 1
        """games"""

    assert config.parse(Cfg, ["--n-games", "5"], prog="t").n_games == 5
    assert config.parse(Cfg, ["--n_games", "6"], prog="t").n_games == 6


@dataclass
class WithPreset:
    preset: str = "a"
    """the command's own preset setting"""


def test_a_config_field_named_preset_is_not_swallowed():
    """Without a preset kind, ``--preset`` is the config's own field (upcycle's MoE preset)."""
    assert config.parse(WithPreset, ["--preset", "b"], prog="t").preset == "b"
    assert config.parse(WithPreset, [], prog="t").preset == "a"
    with pytest.raises(TypeError, match="reserves"):  # both at once would be ambiguous
        config.build_parser(WithPreset, prog="t", preset_kind="train")


def test_command_group_help_lists_its_subcommands():
    from clitools import run_cli

    proc = run_cli("data", "--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("data chess", "data text", "data corpora"):
        line = next(l for l in proc.stdout.splitlines() if l.strip().startswith(name + " "))
        assert cli.COMMANDS[name].help in line
    assert cli.main(["data"]) == 2  # a group alone is still a mistake, with a pointer to --help


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_mentions_preset_only_where_there_are_presets(command):
    from clitools import run_cli

    proc = run_cli(*command.split(), "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    has_presets = cli.COMMANDS[command].preset_kind is not None or command == "upcycle"
    assert ("--preset" in proc.stdout) == has_presets, proc.stdout
