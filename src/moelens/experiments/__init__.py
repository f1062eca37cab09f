"""Experiments: whole runs made of resumable stages (quickstart, the papers' comparisons).

An experiment orchestrates the rest of the package (data, training, capture, analyses, report),
so this folder may import every other one; nothing imports it but the CLI.
"""

from moelens.experiments.pipeline import Step, run_pipeline

__all__ = ["Step", "run_pipeline"]
