"""The published numbers the report puts beside ours.

MoE-X (Yang et al. 2025, arXiv 2503.07639) Tables 1 and 3: chess models of 8 layers, d=512,
trained up to 600k iterations on 16M games; coverage and reconstruction are Karvonen et al.'s
board-state metrics (``piece_masked_blank_and_initial``) on the MLP hidden units. The Expert
Strikes Back (Herbst et al., arXiv 2604.02178): mean best-layer k-sparse probe F1 over 58 text
concepts, the paper's protocol (best unit on the held-out split).
"""

from __future__ import annotations

from typing import Any

MOEX_TABLE1 = {
    "GELU (GPT-2)": (0.213, 0.356, 0.608),
    "ReLU": (0.215, 0.312, 0.581),
    "GEGLU": (0.209, 0.255, 0.394),
    "SoLU": (0.216, 0.306, 0.343),
    "Monet-HD": (0.210, 0.312, 0.528),
    "Monet-VD": (0.212, 0.283, 0.482),
    "PEER": (0.214, 0.323, 0.426),
    "Switch": (0.212, 0.424, 0.734),
    "MoE-X": (0.211, 0.428, 0.840),
}
"""Table 1: model -> (validation loss, coverage, reconstruction)."""

MOEX_TABLE3 = {
    "sparsity router only": (None, 0.404, 0.740),
    "ReLU experts only": (None, 0.418, 0.829),
}
"""Table 3 ablation rows (validation loss not given)."""

MOEX_TABLE4 = {
    "MoE-X from scratch": (None, 0.398, 0.657),
    "dense, continued training": (None, 0.377, 0.674),
}
"""Table 4 (training recipe): the paper's Table 1 MoE-X is upcycled from the dense model; a
MoE-X trained from scratch, as the quickstart's, compares with this row."""

PROBING_K1_K64 = {
    "OLMoE-1B-7B (MoE)": (0.955, 0.982),
    "Mixtral-8x7B (MoE)": (0.918, 0.963),
    "OLMo-1B (dense)": (0.820, 0.938),
    "Pythia-12B (dense)": (0.808, 0.913),
}
"""A few rows of the Expert Strikes Back headline (k=1, k=64), for orientation only: they are
text models and text concepts, not chess."""


def paper_row(model_config: dict[str, Any] | None, initialised: bool = False) -> str | None:
    """The row of MoE-X's Tables 1, 3 or 4 that matches a moelens model config (None if none
    does); ``initialised``: trained on from a saved model (upcycled, or continued) rather than
    from scratch."""
    if not model_config:
        return None
    if model_config.get("ffn") == "dense":
        act = str(model_config.get("ffn_act", "")).lower()
        if initialised:
            return "dense, continued training" if act == "gelu" else None
        return {"gelu": "GELU (GPT-2)", "relu": "ReLU", "geglu": "GEGLU", "solu": "SoLU"}.get(act)
    act = str(model_config.get("expert_act", "")).lower()
    router = str(model_config.get("router", "")).lower()
    if (act, router) == ("relu", "sparsity"):
        return "MoE-X" if initialised else "MoE-X from scratch"
    return {("gelu", "softmax"): "Switch", ("gelu", "sparsity"): "sparsity router only",
            ("relu", "softmax"): "ReLU experts only"}.get((act, router))


def paper_numbers(row: str | None) -> tuple[float | None, float | None, float | None]:
    """(validation loss, coverage, reconstruction) of a paper row, Nones where not published."""
    if row is None:
        return (None, None, None)
    return (MOEX_TABLE1.get(row) or MOEX_TABLE3.get(row) or MOEX_TABLE4.get(row)
            or (None, None, None))
