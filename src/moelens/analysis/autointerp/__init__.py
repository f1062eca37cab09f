"""Automatic interpretation of experts and neurons: explanations, and scores of how well they
predict the unit (``moelens interpret``).

The boundaries follow EleutherAI's delphi, written anew: :mod:`.units` (which units, and their
activation on every token, read from the store one expert at a time), :mod:`.corpus` and
:mod:`.examples` (windows and how they are drawn), :mod:`.explainers` (``rules`` offline,
``llm`` for any OpenAI-compatible endpoint or a local model), :mod:`.scorers` (detection,
fuzzing, the paper's binary scorer, intruder, embedding, simulation, the rules judge; each
asks a :mod:`~.scorers.judges` judge), :mod:`.clients` (HTTP endpoint, local transformers model,
response cache and accounting), :mod:`.prompts` (every prompt and parser), :mod:`.lens` (an
expert's promoted tokens from ``moelens lens``), :mod:`.run` (the pipeline, resumable unit by
unit), :mod:`.summary` (table, intervals, per-decile figure) and :mod:`.command` (the CLI).

Where a published protocol has a flaw, both are implemented, labelled, and the corrected one is
the default: the binary scorer's negatives (per unit vs the paper's shared draw,
``--binary_shared``), the promoted tokens (after the final norm vs without,
``--lens_variant paper``), and parse failures (always failures, never scored as text).
"""
