"""Benchmark: fast probing path (batched Newton in torch) vs the paper's scikit-learn saga.

Identical synthetic activations for both: 4 layers x 8 experts x 6 concepts = 192 (unit,
concept) cells, ~1,500 tokens each, 512 neurons per expert, the 7 k values. Activations are
GLU-like (silu(gate) * up), unscaled (per-neuron log-normal scales, as real expert neurons
are), with a planted signal of random strength on 1-8 neurons per cell, so F1 spans chance to
near perfect. Both paths share the same split and neuron ranking (timed once, added to both).

saga is slow, so it runs on a random subset of the cells and its time is extrapolated linearly
to all cells (said in the output); the F1 difference is measured on that same subset.

    python benchmarks/probing.py [--subset 24] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from moelens.analysis.probing import prepare, probe_units

LAYERS, EXPERTS, CONCEPTS, TOKENS, WIDTH = 4, 8, 6, 1500, 512


def make_cell(rng: np.random.Generator, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(TOKENS - 200, TOKENS + 200))
    y = rng.random(n) < rng.uniform(0.3, 0.7)
    gate = rng.normal(-0.5, 1.0, size=(n, WIDTH)).astype(np.float32)
    up = rng.normal(0.0, 1.0, size=(n, WIDTH)).astype(np.float32)
    m = int(rng.integers(1, 9))
    idx = rng.choice(WIDTH, m, replace=False)
    strength = rng.uniform(0.0, 1.5)
    gate[:, idx] += strength * y[:, None]
    up[:, idx] += strength * y[:, None]
    acts = gate / (1.0 + np.exp(-gate)) * up
    return acts * scales, y


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subset", type=int, default=24, help="cells fitted with saga")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (saga uses one)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    prepared, t_prep = [], 0.0
    for layer in range(LAYERS):
        for e in range(EXPERTS):
            scales = np.exp(rng.normal(0.0, 0.7, size=WIDTH)).astype(np.float32)
            for c in range(CONCEPTS):
                X, y = make_cell(rng, scales)
                meta = dict(concept=f"c{c}", layer=layer, expert=e)
                t0 = time.perf_counter()
                prepared.append(prepare(X, y, meta, seed=42))
                t_prep += time.perf_counter() - t0
    cells = len(prepared)
    probe_units(prepared[:4])  # warm-up (lazy imports, first kernels)
    t0 = time.perf_counter()
    fast = probe_units(prepared, fitter="newton")
    t_fast = time.perf_counter() - t0
    subset = np.sort(np.random.default_rng(args.seed + 1).choice(cells, args.subset, replace=False))
    t0 = time.perf_counter()
    ref = probe_units([prepared[i] for i in subset], fitter="saga")
    t_ref_subset = time.perf_counter() - t0
    t_ref = t_ref_subset * cells / subset.size
    per_cell = len(fast) // cells
    fast_sub = [r for i in subset for r in fast[i * per_cell: (i + 1) * per_cell]]
    f_fast = np.array([r["f1"] for r in fast_sub])
    f_ref = np.array([r["f1"] for r in ref])
    diff = float(np.nanmean(np.abs(f_fast - f_ref)))
    paper = np.array([r["selection"] == "paper" for r in ref])
    conv_ref = float(np.mean([r["converged"] for r in ref if r["selection"] == "paper"]))
    conv_fast = float(np.mean([r["converged"] for r in fast if r["selection"] == "paper"]))
    print(f"cells: {cells} (unit, concept) x {len(set(r['k'] for r in fast))} k, "
          f"{np.mean([p.n_pos + p.n_neg for p in prepared]):.0f} tokens/cell, {WIDTH} neurons; "
          f"torch threads {args.threads}")
    print(f"shared split+ranking: {t_prep:.2f}s; fast fits: {t_fast:.2f}s; saga fits on "
          f"{subset.size} random cells: {t_ref_subset:.2f}s, extrapolated linearly to "
          f"{cells} cells: {t_ref:.1f}s")
    print(f"fits meeting the optimality test (relative gradient of the regularised objective): "
          f"saga {conv_ref:.1%}, newton {conv_fast:.1%}")
    print(f"probing_fit_speedup_vs_sklearn: {t_ref / t_fast:.1f}")
    print(f"probing_speedup_vs_sklearn: {(t_ref + t_prep) / (t_fast + t_prep):.1f}")
    print(f"probing_mean_abs_f1_diff: {diff:.4f}")
    print(f"probing_mean_abs_f1_diff_paper_split: {float(np.nanmean(np.abs(f_fast - f_ref)[paper])):.4f}")


if __name__ == "__main__":
    main()
