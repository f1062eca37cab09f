"""Board-game interpretability metrics: coverage and board reconstruction for any unit space.

Everything works on plain arrays — activations ``[positions, units]`` and one-hot board-state
labels ``[positions, cells]`` per BSP function — so dense neurons, expert neurons (zero where
the expert was not routed), SAE latents and residual dimensions are scored alike.
:mod:`.inputs` holds the constants and validation, :mod:`.metrics` the vectorised scorer and the
chance level, :mod:`.reference` a loop-based twin used only by tests and the benchmark.
"""

from moelens.analysis.boardgame.inputs import THRESHOLDS, BSPLabels
from moelens.analysis.boardgame.metrics import (
    LABELLING, BoardScore, BoardScorer, chance_coverage, score_blocks, score_function,
    score_functions,
)

__all__ = ["LABELLING", "THRESHOLDS", "BSPLabels", "BoardScore", "BoardScorer",
           "chance_coverage", "score_blocks", "score_function", "score_functions"]
