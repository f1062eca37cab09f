"""Board-game metrics: the vectorised scorer vs the loop-based reference, in one process.

Workload of the issue: 4,096 units on 20,000 fitting + 20,000 test positions (1,000 games × 20
positions per split), scored against synthetic labels shaped like the 23 BSP functions (three
8×8×13 piece functions, one 8×8×3, three 8×8×1, sixteen 1×1×1). Activations are synthetic and
ReLU-sparse (≈90% zeros); 256 units follow one cell each so that labelling and reconstruction do
real work. The loop reference runs on a subset of units (all positions, all functions) and its time
is extrapolated linearly to 4,096 units — its cost is a fixed amount of work per unit.
Prints ``boardgame_speedup_vs_loop: <ratio>`` and ``boardgame_seconds: <s>`` (vectorised).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from moelens.analysis.boardgame import BSPLabels, score_functions
from moelens.analysis.boardgame.reference import reference_scores


def onehot(rng, n, squares, classes):
    cls = rng.integers(0, classes, size=(n, squares))
    y = np.zeros((n, squares, classes), dtype=bool)
    y[np.arange(n)[:, None], np.arange(squares)[None, :], cls] = True
    return y.reshape(n, -1)


def synthetic_functions(rng, n_fit, n_test):
    """23 label sets with the BSP functions' shapes; piece masks drop the blank class (12)."""
    shapes = ([("piece", 13, False), ("piece_masked_blank", 13, True),
               ("piece_masked_blank_and_initial", 13, True), ("piece_color", 3, False)]
              + [(f"square_{i}", 1, False) for i in range(3)])
    fns = {}
    for name, classes, mask_blank in shapes:
        if classes == 1:
            y_fit, y_test = rng.random((n_fit, 64)) < 0.3, rng.random((n_test, 64)) < 0.3
        else:
            y_fit, y_test = onehot(rng, n_fit, 64, classes), onehot(rng, n_test, 64, classes)
        mask = np.ones(64 * classes, dtype=bool)
        if mask_blank:
            mask[12::13] = False
        fns[name] = BSPLabels(y_fit, y_test, mask)
    for i in range(16):
        b = rng.uniform(0.02, 0.6)
        fns[f"flag_{i}"] = BSPLabels(rng.random((n_fit, 1)) < b, rng.random((n_test, 1)) < b,
                                     np.ones(1, bool))
    return fns


def synthetic_units(rng, n, units, follow):
    """ReLU-sparse activations; unit f < len(follow) also fires where its followed cell holds."""
    a = rng.standard_normal((n, units), dtype=np.float32) - 1.3
    np.maximum(a, 0, out=a)
    a[:, :follow.shape[1]] += follow * rng.uniform(1.0, 2.0, size=follow.shape[1]).astype(
        np.float32)
    return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=4096)
    ap.add_argument("--positions", type=int, default=20_000, help="per split")
    ap.add_argument("--loop_units", type=int, default=3)
    ap.add_argument("--chunk_units", type=int, default=256)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.positions
    fns = synthetic_functions(rng, n, n)
    head = fns["piece_masked_blank_and_initial"]
    cols = rng.choice(np.flatnonzero(head.cell_mask), size=256)
    a_fit = synthetic_units(rng, n, args.units, head.y_fit[:, cols])
    a_test = synthetic_units(rng, n, args.units, head.y_test[:, cols])

    t0 = time.perf_counter()
    scores = score_functions(a_fit, a_test, fns, chunk_units=args.chunk_units)
    fast = time.perf_counter() - t0
    h = scores["piece_masked_blank_and_initial"]
    print(f"headline function: coverage {h.coverage:.3f} (chance {h.chance_coverage:.3f}), "
          f"reconstruction {h.reconstruction:.3f}, labelled units {h.n_labelled}")

    # loop reference on a subset: the first units (some follow cells, so labels exist)
    k = args.loop_units
    t0 = time.perf_counter()
    for lab in fns.values():
        reference_scores(a_fit[:, :k], a_test[:, :k], lab.y_fit, lab.y_test, lab.cell_mask)
    loop = (time.perf_counter() - t0) * args.units / k
    print(f"loop reference: {k} units timed, extrapolated linearly to {args.units} units: "
          f"{loop:.0f} s")
    print(f"boardgame_speedup_vs_loop: {loop / fast:.1f}")
    print(f"boardgame_seconds: {fast:.1f}")


if __name__ == "__main__":
    main()
