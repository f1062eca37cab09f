"""What a quickstart's numbers can and cannot say, written from the numbers themselves.

The notes go into ``summary.json`` and the report's first section: the run's scale against the
paper's, what the board-state metrics and the probes found for these models (including when
they found nothing that separates the models), and what a longer run would change.
"""

from __future__ import annotations

from typing import Any

LONGER = ("What a longer run changes: more steps (--train.max_iters) lower the validation loss "
          "and sharpen the probes first. In a 4x longer run of the default dense GELU and MoE-X "
          "(1,600 steps, BENCHMARKS.md) the validation loss fell by a fifth, middle-layer "
          "coverage rose from 0.056 to 0.074 (dense) and from 0.042 to 0.078 (MoE-X; chance "
          "0.024), the linear board probe's accuracy on changed squares only from 0.28 to 0.32 "
          "and 0.34, and still no unit was labelled with a board cell (reconstruction 0): units "
          "that track "
          "pieces on squares need far longer training than a CPU quickstart allows (the paper "
          "trains up to 600k steps; --preset quickstart-gpu and quickstart-gpu-paper go that "
          "way). More captured characters (--capture.tokens) and probing seeds (--probe.seeds) "
          "narrow the intervals.")


def scale(cfg: Any) -> str:
    t, g = cfg.train, cfg.games
    tokens = t.max_iters * t.batch_size * t.ctx
    return (f"Scale: each model saw {tokens:,} characters ({t.max_iters} steps of "
            f"{t.batch_size} x {t.ctx}) of {g.n_games:,} generated games; MoE-X's chess models "
            "trained up to 600k steps of 100 x 1023 characters on 16M games, so our absolute "
            "numbers are far below the paper's and only the comparison between our models, "
            "trained identically, is meaningful.")


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def board(rows: list[dict[str, Any]]) -> str | None:
    have = [r for r in rows if r.get("coverage") is not None]
    if not have:
        return None
    each = "; ".join(f"{r['model']} coverage {_fmt(r['coverage'])} (chance "
                     f"{_fmt(r.get('chance_coverage'))}), reconstruction "
                     f"{_fmt(r.get('reconstruction'))}" for r in have)
    recon = [r.get("reconstruction") or 0.0 for r in have]
    ratios = [r["coverage"] / r["chance_coverage"] for r in have if r.get("chance_coverage")]
    if max(recon) < 0.02:
        span = (f", and coverage is {min(ratios):.1f} to {max(ratios):.1f} times its chance "
                "level" if ratios else "")
        return (f"Board-state metrics: {each}. No unit of any model is precise enough to be "
                f"labelled with a board cell (reconstruction at most {max(recon):.3f}){span}: "
                "at this size and training length the models have not formed board-state units, "
                "so these metrics do not separate them.")
    best = max(have, key=lambda r: r.get("reconstruction") or 0.0)
    return (f"Board-state metrics: {each}. Highest reconstruction: {best['model']} (the paper "
            "reports MoE-X 0.840 > Switch 0.734 > dense GELU 0.608 at full scale).")


def probing(rows: list[dict[str, Any]]) -> str | None:
    dense = [r for r in rows if r.get("probe_k1") is not None and r.get("probe_routed_k1") is None]
    moes = [r for r in rows if r.get("probe_k1") is not None and r.get("probe_routed_k1") is not None]
    if not dense or not moes:
        return None
    d = dense[0]
    parts = []
    for m in moes:
        gap = m["probe_k1"] - d["probe_k1"]
        ctrl = m["probe_routed_k1"] - d["probe_k1"]
        parts.append(f"{m['model']} {_fmt(m['probe_k1'])} ({gap:+.3f} over {d['model']}; dense "
                     f"units on its experts' own tokens {_fmt(m['probe_routed_k1'])}, {ctrl:+.3f})")
    return ("k-sparse probing, validation-selected test F1 at k=1: " + "; ".join(parts)
            + f"; {d['model']} {_fmt(d['probe_k1'])}. Where the routed-token control gets most of "
            "the gap, the experts' advantage comes from the tokens they are routed, not from "
            "more monosemantic neurons.")


def legal(rows: list[dict[str, Any]]) -> str | None:
    have = [r for r in rows if r.get("legal_move_rate") is not None]
    if not have:
        return None
    each = ", ".join(f"{r['model']} {_fmt(r['legal_move_rate'])}" for r in have)
    low = max(r["legal_move_rate"] for r in have) < 0.9
    return (f"Legal-move rate (greedy next move on held-out game prefixes): {each}; a "
            "well-trained 8-layer model plays 99.8% legal moves (Karvonen 2024)"
            + (", so these models write moves but do not yet follow the board." if low
               else "."))


def interp(rows: list[dict[str, Any]]) -> str | None:
    have = [r for r in rows if r.get("interp_score") is not None]
    if not have:
        return None
    each = ", ".join(f"{r['model']} {_fmt(r['interp_score'])}" for r in have)
    metric = have[0].get("interp_metric") or "score"
    weak = max(r["interp_score"] for r in have) < 0.7
    return (f"Auto-interpretation of the experts (offline rules explainer, judged by its own "
            f"rules), mean {metric}: {each} (0.5 is chance)."
            + (" Character-level chess experts are routed a large share of all characters, so "
               "a rule over characters and moves tells the windows where an expert fires from "
               "those where it is quiet only partly; an LLM explainer (moelens interpret "
               "--explainer llm) reads the windows as a person would." if weak else ""))


def notes(cfg: Any, rows: list[dict[str, Any]]) -> list[str]:
    """The notes of a run whose comparison rows (the headline) are ``rows``."""
    out = [scale(cfg)]
    out += [n for n in (legal(rows), board(rows), probing(rows), interp(rows)) if n]
    out.append(LONGER)
    return out
