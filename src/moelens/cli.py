"""The ``moelens`` command line: a thin layer that parses a typed config and calls the library.

Commands are registered in :data:`COMMANDS` as ``"module:function"`` strings and imported only
when used, so ``moelens --help`` stays fast. Each command module exposes a dataclass config and a
function ``run(config) -> int``; the command's registration names both and its preset kind.

User mistakes surface as :class:`~moelens.errors.MoelensError`: printed as one line on stderr,
exit status 2, no traceback.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from moelens.errors import MoelensError


@dataclass(frozen=True)
class Command:
    """Where a command lives: ``module`` defines ``config`` (a dataclass) and ``function``."""

    module: str
    config: str
    function: str
    help: str
    preset_kind: str | None = None
    default_preset: str | None = None


COMMANDS: dict[str, Command] = {
    "data chess": Command("moelens.data.commands", "ChessDataConfig", "run_chess",
                          "generate chess games (Stockfish or built-in player) or import PGN files "
                          "into training blocks"),
    "data text": Command("moelens.data.commands", "TextDataConfig", "run_text",
                         "tokenize local text files into training blocks (BPE tokenizer trained "
                         "locally or loaded)"),
    "data corpora": Command("moelens.data.corpora", "CorporaConfig", "run",
                            "build and cache the offline concept corpora (prose, code, LaTeX, POS "
                            "tags) with their licences"),
    "train": Command("moelens.training.command", "TrainConfig", "run", "train a dense, Switch or MoE-X model",
                     preset_kind="train", default_preset=None),
    "eval": Command("moelens.training.evaluate", "EvalConfig", "run",
                    "validation loss and perplexity of a saved model on a data set"),
    "upcycle": Command("moelens.models.upcycle_command", "UpcycleConfig", "run",
                       "turn a trained dense checkpoint into an MoE / MoE-X checkpoint"),
    "capture": Command("moelens.capture.command", "CaptureConfig", "run",
                       "capture expert, FFN, router and residual activations into a store"),
    "store verify": Command("moelens.store.verification", "StoreVerifyConfig", "run",
                            "check every file of an activation store against its manifest"),
    "probe": Command("moelens.analysis.probing.command", "ProbeConfig", "run",
                     "k-sparse probing of the units in a store against token concepts"),
    "causal ablate": Command("moelens.analysis.causal.command", "AblateConfig", "run_ablate",
                             "ablate every chosen expert in turn (batched sweep): Δ loss, KL, per "
                             "domain, untested experts marked"),
    "causal knowledge": Command("moelens.analysis.causal.command", "KnowledgeConfig", "run_knowledge",
                                "knowledge control: ablate a domain's top-n experts vs random experts"),
    "specialize": Command("moelens.analysis.specialization.command", "SpecializeConfig", "run",
                          "routing statistics and input/output specialization of every expert of a store"),
    "causal trigger": Command("moelens.analysis.causal.command", "TriggerConfig", "run_trigger",
                              "trigger -> target test of labelled experts (direct logit attribution)"),
    "causal cases": Command("moelens.analysis.causal.command", "CasesConfig", "run_cases",
                            "trigger -> target test cases written by an LLM from 'moelens interpret' "
                            "labels, validated as 'causal trigger' validates a cases file"),
    "sae train": Command("moelens.analysis.sae.command", "SaeTrainConfig", "run",
                         "train a sparse autoencoder (TopK or ReLU + L1) on a dense space of a "
                         "store; its latents become the store's unit space 'sae'"),
    "quickstart": Command("moelens.experiments.quickstart", "QuickstartConfig", "run",
                          "generate chess games, train dense / Switch / MoE-X, capture, probe, "
                          "report: the whole road in one resumable command",
                          preset_kind="quickstart"),
    "report": Command("moelens.report.command", "ReportConfig", "run",
                      "one self-contained HTML report of a run directory's results"),
    "lens": Command("moelens.capture.lens", "LensConfig", "run",
                    "each expert's promoted tokens (logit lens after the final norm) from a model "
                    "and its store, for 'moelens interpret'"),
    "interpret": Command("moelens.analysis.autointerp.command", "InterpretConfig", "run",
                         "label experts or neurons with explanations (rules, an LLM endpoint or a "
                         "local model) and score them (detection, fuzzing, binary, ...)"),
    "boardgame": Command("moelens.analysis.boardgame.command", "BoardgameConfig", "run",
                         "chess board-state coverage and reconstruction of a store's units, and "
                         "a residual board probe"),
    "experiment chess": Command("moelens.experiments.chess", "ChessExperimentConfig", "run",
                                "the MoE-X chess comparison: train every model, score the board "
                                "metrics, write the paper's tables (resumable)",
                                preset_kind="chess-experiment", default_preset="chess-small"),
    "experiment language": Command("moelens.experiments.language", "LanguageExperimentConfig",
                                   "run", "both papers' language-side claims on dense, Switch, "
                                   "MoE-X and top-k MoE models: neuron auto-interpretation, "
                                   "k-sparse probing with controls, expert labels, trigger "
                                   "cases, specialization, knowledge control (resumable)",
                                   preset_kind="language-experiment",
                                   default_preset="language-small"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: moelens <command> [options]   (moelens <command> --help for its options)", "",
             "commands:"]
    lines += [f"  {name.ljust(width)}  {cmd.help}" for name, cmd in COMMANDS.items()]
    return "\n".join(lines)


def _group_usage(group: str) -> str:
    subs = {n: c for n, c in COMMANDS.items() if n.startswith(group + " ")}
    width = max(len(n) for n in subs)
    lines = [f"usage: moelens {group} <subcommand> [options]   (moelens {group} <subcommand> "
             "--help for its options)", "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {cmd.help}" for name, cmd in subs.items()]
    return "\n".join(lines)


def _groups() -> set[str]:
    return {n.split()[0] for n in COMMANDS if " " in n}


def _find(argv: list[str]) -> tuple[str, Command, list[str]]:
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            return name, COMMANDS[name], argv[words:]
    if argv and argv[0] in _groups():
        subs = [n.split()[1] for n in COMMANDS if n.startswith(argv[0] + " ")]
        raise MoelensError(f"'moelens {argv[0]}' needs one of: {', '.join(subs)} "
                           f"(see 'moelens {argv[0]} --help')")
    raise MoelensError(
        f"unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)} (see 'moelens --help')"
    )


def main(argv: list[str] | None = None) -> int:
    from moelens import config as config_mod

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from moelens import __version__

        print(f"moelens {__version__}")
        return 0
    if argv[0] in _groups() and argv[1:2] in (["-h"], ["--help"], ["help"]):
        print(_group_usage(argv[0]))
        return 0
    try:
        name, cmd, rest = _find(argv)
        module = importlib.import_module(cmd.module)
        cfg_cls = getattr(module, cmd.config)
        cfg = config_mod.parse(cfg_cls, rest, prog=f"moelens {name}", description=cmd.help,
                               preset_kind=cmd.preset_kind, default_preset=cmd.default_preset)
        return int(getattr(module, cmd.function)(cfg) or 0)
    except MoelensError as exc:
        print(f"moelens: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("moelens: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
